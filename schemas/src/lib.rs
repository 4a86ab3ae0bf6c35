//! Types shared across the gateway, the worker and the tests: the manager WebSocket protocol,
//! and the reasons a call or meet can be missed. The SQL migrations live in `migrations/`.

pub mod missed;
pub mod ws;
