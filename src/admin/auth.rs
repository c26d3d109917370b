//! The bearer token: with `admin_token` set, every `/api` request (and `/metrics`
//! when `protect_metrics` is on) needs `Authorization: Bearer <token>`, or gets 401.
//! Probes never need it. The token is read from the live configuration, so a reload
//! changes it without a restart.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::error::ApiError;
use super::Ctx;

/// Middleware in front of every route.
pub async fn guard(State(ctx): State<Arc<Ctx>>, request: Request, next: Next) -> Response {
    let config = ctx.state.config();
    let Some(token) = config.admin_token.as_deref() else {
        return next.run(request).await;
    };
    let path = request.uri().path();
    let protected = path == "/api"
        || path.starts_with("/api/")
        || (path == "/metrics" && config.protect_metrics);
    if !protected {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer);
    match given {
        Some(given) if same_secret(given, token) => next.run(request).await,
        Some(_) => ApiError::unauthorized("invalid bearer token").into_response(),
        None => ApiError::unauthorized(
            "this endpoint needs an admin token: send \"Authorization: Bearer <admin_token>\"",
        )
        .into_response(),
    }
}

/// The credentials of an `Authorization: Bearer ...` value (scheme case-insensitive).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| rest.trim())
        .filter(|t| !t.is_empty())
}

/// Compares digests, so the time taken does not tell how much of the token matched.
fn same_secret(given: &str, expected: &str) -> bool {
    let a = Sha256::digest(given.as_bytes());
    let b = Sha256::digest(expected.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_and_compares() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cret", "s3cre"));
    }
}
