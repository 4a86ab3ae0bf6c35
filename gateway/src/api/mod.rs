//! HTTP surface: health, the manager WebSocket, and (later issues) the admin API and console.

mod admin;
pub mod auth;
mod console;
mod error;
mod range;
mod transcript_format;
mod ws;

use std::sync::Arc;

use axum::routing::get;
use axum::Router;

use crate::sip_service::SipStats;
use crate::state::AppState;

pub use error::ApiError;

pub fn router(state: Arc<AppState>, sip_stats: Arc<SipStats>) -> Router {
    let media_state = state.clone();
    let metrics = get(move || {
        let (stats, state) = (sip_stats.clone(), media_state.clone());
        async move { stats.render_prometheus() + &state.media.render_prometheus() }
    });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", metrics)
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/ws", get(ws::upgrade))
        .merge(console::router())
        .merge(admin::router())
        .with_state(state)
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        schemas::OPENAPI_JSON,
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}
