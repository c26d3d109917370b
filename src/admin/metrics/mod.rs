//! `GET /metrics`: the Prometheus registry, built once when the admin server starts,
//! holding custom collectors that read `Shared` at scrape time (the hot path never
//! touches Prometheus) and the crate's Linux process collector (`process_*`: CPU, RSS,
//! virtual memory, open and max fds, threads, start time), with CPU seconds re-read as
//! a float ([`process`]).
//!
//! Families: see [`queries`] (statements), [`pools`] (pools, clients, build) and
//! [`slow`] (slow statements, alerts, plans, store).
//! Names carry the `pgsidecar_` prefix, values are in base units (seconds, bytes),
//! counters end in `_total`, and distributions are histograms with fixed buckets so
//! that a fleet of sidecars aggregates. Gathering runs on a blocking thread.

pub(crate) mod family;
mod pool_rows;
mod pools;
#[cfg(target_os = "linux")]
mod process;
mod queries;
mod slow;

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use prometheus::{Encoder, Registry, TextEncoder};

use super::error::ApiError;
use super::Ctx;
use crate::state::Running;

pub use pools::PIN_REASONS;
pub use queries::BOUNDS as QUERY_DURATION_BUCKETS;

/// The registry every scrape gathers.
pub fn registry(state: &Arc<Running>) -> prometheus::Result<Registry> {
    let registry = Registry::new();
    registry.register(Box::new(queries::QueryCollector::new(state.clone())?))?;
    registry.register(Box::new(pools::PoolCollector::new(state.clone())?))?;
    registry.register(Box::new(slow::SlowCollector::new(state.clone())?))?;
    crate::advisor::metrics::register(&registry, state.advisor.as_ref())?;
    registry.register(Box::new(crate::cache::metrics::CacheCollector::new(
        state.cache.clone(),
    )?))?;
    #[cfg(target_os = "linux")]
    registry.register(Box::new(process::ProcessMetrics::new()))?;
    Ok(registry)
}

pub(crate) async fn handler(State(ctx): State<Arc<Ctx>>) -> Result<Response, ApiError> {
    let text = tokio::task::spawn_blocking(move || {
        let families = ctx.registry.gather();
        let mut out = Vec::with_capacity(16 * 1024);
        TextEncoder::new()
            .encode(&families, &mut out)
            .map_err(|e| ApiError::internal(format!("cannot encode metrics: {e}")))?;
        Ok::<_, ApiError>(out)
    })
    .await??;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response())
}
