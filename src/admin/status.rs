//! `GET /api/status`: what the web console needs to explain itself: the version and
//! uptime, whether statistics are on, where slow events and alerts come from (the
//! store, or memory when the store is off or down, and how many memory keeps), the slow
//! thresholds, and which features are not built yet.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::params::{Params, RawParams};
use super::Ctx;

pub async fn status(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    Params::new(raw)?.finish(&[])?;
    let state = &ctx.state;
    let config = state.config();
    let store = match (config.store, state.slow_ctx.store.get().is_some()) {
        (_, true) => "connected",
        (false, false) => "off",
        (true, false) => "down",
    };
    let measure = state.measure.as_ref();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "sidecar": state.slow_ctx.sidecar_id,
        "uptime_s": state.started.elapsed().as_secs(),
        "stats": measure.is_some(),
        "fingerprints_tracked": measure.map(|m| m.registry.tracked()),
        "max_fingerprints": measure.map(|m| m.registry.max_fingerprints()),
        "store": store,
        "memory_keeps": crate::slow::RECENT_KEEP,
        "slow_warning_ms": config.slow_warning_ms,
        "slow_critical_ms": config.slow_critical_ms,
        "not_built_yet": ["cache", "advisor"],
    })))
}
