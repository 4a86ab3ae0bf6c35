//! Webhooks: a channel's events (`recording.ready`, `transcript.ready`, `summary.ready`) are
//! written to an outbox with what they announce ([`crate::db::NewWebhookEvent`]); the
//! dispatcher POSTs them, signed ([`sign`]), and retries until the endpoint answers 2xx.

pub mod dispatcher;
pub mod sign;
