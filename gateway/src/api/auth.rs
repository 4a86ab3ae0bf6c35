//! Bearer tokens (RFC 6750): from the Authorization header, or for browsers' WebSockets, which
//! cannot set headers, from the `access_token` query parameter (RFC 6750 §2.3).

use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::db::Manager;
use crate::state::AppState;

use super::ApiError;

pub fn bearer_token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a str> {
    let from_header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    from_header.or_else(|| {
        query?
            .split('&')
            .find_map(|kv| kv.strip_prefix("access_token="))
            .filter(|t| !t.is_empty())
    })
}

/// Tokens are stored only as SHA-256 hex, so a database leak does not leak tokens.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

pub async fn authenticate(
    state: &AppState,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Manager, ApiError> {
    let token = bearer_token(headers, query).ok_or(ApiError::Unauthorized)?;
    state
        .db
        .manager_by_token_sha256(&token_sha256(token))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or(ApiError::Unauthorized)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_from_header_or_query() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer_token(&h, Some("a=1&access_token=xyz")), Some("xyz"));
        assert_eq!(bearer_token(&h, Some("access_token=")), None);
        assert_eq!(bearer_token(&h, None), None);
        h.insert("authorization", "Bearer demo-manager-1".parse().unwrap());
        assert_eq!(
            bearer_token(&h, Some("access_token=other")),
            Some("demo-manager-1")
        );
        assert_eq!(
            token_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
