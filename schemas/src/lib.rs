//! Types shared across the gateway, the worker and the tests: the manager WebSocket protocol,
//! the admin API's bodies, and the reasons a call or meet can be missed. The SQL migrations live in `migrations/`.

pub mod api;
pub mod missed;
pub mod ws;

/// The admin API's OpenAPI 3.1 description, served at `/v1/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../openapi/openapi.json");
