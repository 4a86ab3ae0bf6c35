//! API errors as `{code, message}` JSON, without internals.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or invalid bearer token")]
    Unauthorized,
    #[error("this token's role may not do this")]
    Forbidden,
    /// Also for ids of other channels: they are not told apart from ids that do not exist.
    #[error("no such {0}")]
    NotFound(&'static str),
    #[error("invalid request: {0}")]
    BadRequest(String),
    #[error("the range is outside the {size} bytes of the file")]
    RangeNotSatisfiable { size: u64 },
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "auth.unauthorized",
            ApiError::Forbidden => "auth.forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::BadRequest(_) => "request.invalid",
            ApiError::RangeNotSatisfiable { .. } => "range.not_satisfiable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(e) = &self {
            tracing::error!(error = %format!("{e:#}"), "internal API error");
        }
        let body = serde_json::json!({ "code": self.code(), "message": self.to_string() });
        let mut resp = (self.status(), Json(body)).into_response();
        if let ApiError::RangeNotSatisfiable { size } = self {
            // RFC 9110 §15.5.17: the current length.
            if let Ok(v) = axum::http::HeaderValue::from_str(&format!("bytes */{size}")) {
                resp.headers_mut()
                    .insert(axum::http::header::CONTENT_RANGE, v);
            }
        }
        if matches!(self, ApiError::Unauthorized) {
            // RFC 6750 §3.
            resp.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}
