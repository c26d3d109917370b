//! Kubernetes probes. `/healthz`: the process answers. `/readyz`: the upstream accepts
//! a TCP connection and answers a startup packet (as the proxy's own user, to the
//! upstream URL's database) with an authentication request within 2 s; otherwise 503
//! with the reason (refused, timed out, or the server's own error such as "the database
//! system is starting up"). No password is sent: reaching authentication is enough.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::Json;
use bytes::BytesMut;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::error::ApiError;
use super::Ctx;
use crate::config::Upstream;

/// How long the readiness check may take in all.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Longest ErrorResponse read from the server.
const MAX_ERROR_LEN: usize = 8192;

pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub async fn readyz(State(ctx): State<Arc<Ctx>>) -> Result<Json<Value>, ApiError> {
    let upstream = ctx.state.upstream();
    let address = upstream.address();
    match tokio::time::timeout(READY_TIMEOUT, check(&upstream)).await {
        Ok(Ok(())) => Ok(Json(json!({ "status": "ready", "upstream": address }))),
        Ok(Err(reason)) => Err(ApiError::unavailable(format!(
            "upstream {address} not ready: {reason}"
        ))),
        Err(_) => Err(ApiError::unavailable(format!(
            "upstream {address} not ready: no answer within {} ms",
            READY_TIMEOUT.as_millis()
        ))),
    }
}

/// Connects, sends a startup packet and reads the first reply.
async fn check(upstream: &Upstream) -> Result<(), String> {
    let mut stream = crate::tls::ServerStream::connect(&upstream.host, upstream.port)
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let mut packet = BytesMut::new();
    let params = [
        ("user", upstream.user.as_str()),
        ("database", upstream.dbname.as_str()),
        ("application_name", "pgsidecar readiness check"),
    ];
    postgres_protocol::message::frontend::startup_message(params, &mut packet)
        .map_err(|e| format!("cannot build a startup packet: {e}"))?;
    let io = |e: std::io::Error| format!("connection failed during startup: {e}");
    stream.write_all(&packet).await.map_err(io)?;
    let tag = stream.read_u8().await.map_err(io)?;
    let len = stream.read_i32().await.map_err(io)?;
    match tag {
        b'R' => {
            let code = stream.read_i32().await.map_err(io)?;
            if code == 0 {
                // Trust: the server completes the login; end the session politely.
                let _ = stream.write_all(&[b'X', 0, 0, 0, 4]).await;
            }
            Ok(())
        }
        b'E' => {
            let body_len = usize::try_from(len.saturating_sub(4)).unwrap_or(0);
            let mut body = vec![0u8; body_len.min(MAX_ERROR_LEN)];
            stream.read_exact(&mut body).await.map_err(io)?;
            Err(server_error(&body))
        }
        other => Err(format!(
            "unexpected reply to the startup packet (message type {:?})",
            other as char
        )),
    }
}

/// "message (SQLSTATE code)" from an ErrorResponse body.
fn server_error(body: &[u8]) -> String {
    let mut message = String::from("the server refused the connection");
    let mut code = String::new();
    for field in body.split(|&b| b == 0) {
        match field.split_first() {
            Some((b'M', text)) => message = String::from_utf8_lossy(text).into_owned(),
            Some((b'C', text)) => code = String::from_utf8_lossy(text).into_owned(),
            _ => {}
        }
    }
    if code.is_empty() {
        message
    } else {
        format!("{message} (SQLSTATE {code})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_fields() {
        let body = b"SFATAL\0C57P03\0Mthe database system is starting up\0\0";
        assert_eq!(
            server_error(body),
            "the database system is starting up (SQLSTATE 57P03)"
        );
        assert_eq!(server_error(b""), "the server refused the connection");
    }
}
