//! The gateway as a library, so the integration tests can start it in-process.
//!
//! - [`sip_service`]: socket drivers and the task that owns the sans-IO SIP endpoint.
//! - [`call`]: one actor per call (admission to the domain, ringing, outcomes).
//! - [`db`]: repositories over SQLite or PostgreSQL (one migrations folder in `schemas/`).
//! - [`api`]: HTTP: health, manager WebSocket.

pub mod api;
pub mod call;
pub mod config;
pub mod db;
pub mod hub;
pub mod media_metrics;
pub mod net;
pub mod number_directory;
pub mod phone_number;
pub mod recording;
pub mod rtp_ports;
pub mod server;
pub mod sip_service;
pub mod state;
pub mod transcription;
pub mod trunk_limits;
pub mod webhooks;
