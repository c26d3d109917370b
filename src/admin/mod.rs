//! The admin HTTP server on `admin_listen` (default `127.0.0.1:9930`): Prometheus
//! metrics, Kubernetes probes and a JSON API over pools and statement statistics.
//!
//! | method | path | answers | parameters |
//! |---|---|---|---|
//! | GET | `/healthz` | 200 `{"status":"ok"}` while the process runs | |
//! | GET | `/readyz` | 200 when the upstream answers a startup, else 503 with the reason ([`probes`]) | |
//! | GET | `/metrics` | Prometheus text format ([`metrics`]) | |
//! | GET | `/api/pools` | pools: mode, size, servers and clients by state, checkouts, waits ([`pools`]) | `database`, `user`, `limit`, `cursor` |
//! | GET | `/api/queries` | statement statistics per (database, user, fingerprint) ([`queries`]) | `window`, `sort`, `database`, `user`, `command`, `table`, `limit`, `cursor` |
//! | GET | `/api/queries/{fingerprint}` | one fingerprint (16 hex digits) in every window | `database` |
//! | GET | `/api/slow` | slow executions, newest first ([`slow`]) | `limit`, `cursor` |
//! | GET | `/api/alerts` | fired alerts, newest first | `limit`, `cursor` |
//! | GET | `/api/plans` | captured EXPLAIN plans with their hashes, newest first | `fingerprint`, `database`, `limit`, `cursor` |
//! | POST | `/api/plans/capture` | captures a plan now with the shape's last sampled values; body `{"fingerprint", "database"?}` ([`plans`]) | |
//! | GET | `/api/plan_changes` | plan changes with the p50 on either side, newest first | `fingerprint`, `database`, `limit`, `cursor` |
//! | GET | `/api/history` | stored per-minute statistics (`stats_snapshots`), newest first | `window` (default 1h), `fingerprint`, `database`, `limit`, `cursor` |
//! | GET | `/api/jobs` | background jobs in the store (payloads hidden) | `status`, `limit`, `cursor` |
//! | GET | `/ui/` | the web console: a page and its scripts, embedded in the binary ([`ui`]) | |
//! | GET | `/api/status` | version, uptime, store state, slow thresholds ([`status`]) | |
//! | GET | `/api/minutes` | the last hour, one point per minute: calls, errors, p50/p95/p99, clients waiting, servers in use ([`history`]) | |
//! | GET | `/api/minutes/{fingerprint}` | one fingerprint's minutes: calls, errors, mean, p95 | `database` |
//! | GET | `/api/queries/table` | a compact slice of the sorted, filtered statistics ([`table`]) | `window`, `sort`, `order`, `database`, `user`, `command`, `table`, `q`, `offset`, `limit`, `snapshot` |
//! | GET | `/api/queries/{fingerprint}/histogram` | its latency distribution in a window ([`latency`]) | `window`, `database`, `user` |
//! | GET | `/api/show/{pools,clients,servers}` | what `SHOW POOLS/CLIENTS/SERVERS` answer ([`show`]) | `limit` |
//!
//! - Token ([`auth`]): with `admin_token` set, `/api/*` needs `Authorization: Bearer
//!   <token>` (401 otherwise); `/metrics` needs it too when `protect_metrics = true`;
//!   the probes never do.
//! - Lists answer `{"data": [...], "next_cursor": "..." | null, "has_more": bool}`;
//!   `limit` is 1 to 100 (default 25); `next_cursor` is opaque and signed
//!   ([`cursor`]); query listings page through a frozen result ([`pages`]).
//! - Errors are `{"error": "..."}` ([`error`]): 400 for a bad parameter, cursor or
//!   fingerprint (unknown parameters included), 401, 404 for an unknown path,
//!   fingerprint, or statistics switched off, 405, 503 from `/readyz`.
//! - Reads of the statistics registry run on blocking threads, never on the threads
//!   that serve clients. The server stops accepting when a drain starts.

mod auth;
pub(crate) mod cursor;
pub(crate) mod error;
mod history;
mod latency;
pub(crate) mod metrics;
mod pages;
pub(crate) mod params;
mod plans;
mod pools;
mod probes;
mod queries;
mod rows;
mod show;
mod slow;
mod status;
mod table;
mod ui;

use std::future::IntoFuture;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::Running;
use cursor::CursorSigner;
use error::ApiError;
use history::History;
use pages::PageStore;

pub use metrics::{PIN_REASONS, QUERY_DURATION_BUCKETS};

/// What every handler receives.
pub(crate) struct Ctx {
    state: Arc<Running>,
    registry: prometheus::Registry,
    cursors: CursorSigner,
    pages: PageStore,
    history: Arc<History>,
}

/// The routes, for a server or a test.
pub fn router(state: Arc<Running>) -> prometheus::Result<Router> {
    router_with(state, Arc::default())
}

fn router_with(state: Arc<Running>, history: Arc<History>) -> prometheus::Result<Router> {
    let ctx = Arc::new(Ctx {
        history,
        registry: metrics::registry(&state)?,
        state,
        cursors: CursorSigner::default(),
        pages: PageStore::default(),
    });
    let router = Router::new()
        .route("/healthz", get(probes::healthz))
        .route("/readyz", get(probes::readyz))
        .route("/metrics", get(metrics::handler))
        .route("/api/pools", get(pools::list))
        .route("/api/queries", get(queries::list))
        .route("/api/queries/{fingerprint}", get(queries::detail))
        .route("/api/slow", get(slow::slow))
        .route("/api/alerts", get(slow::alerts))
        .route("/api/plans", get(slow::plans))
        .route("/api/plans/capture", post(plans::capture))
        .route("/api/plan_changes", get(plans::changes))
        .route("/api/history", get(plans::history))
        .route("/api/jobs", get(slow::jobs))
        .route("/api/status", get(status::status))
        .route("/api/minutes", get(history::overview))
        .route("/api/minutes/{fingerprint}", get(history::query))
        .route("/api/queries/table", get(table::table))
        .route(
            "/api/queries/{fingerprint}/histogram",
            get(latency::histogram),
        )
        .route("/api/show/{list}", get(show::show))
        .route(
            "/api/cache",
            get(|s: State<Arc<Ctx>>| crate::cache::api::show(s.state.clone())),
        )
        .route(
            "/api/cache/invalidate",
            post(|s: State<Arc<Ctx>>, body| crate::cache::api::invalidate(s.state.clone(), body)),
        )
        .route("/ui", get(ui::to_index))
        .route("/ui/", get(ui::index))
        .route("/ui/{file}", get(ui::asset))
        .merge(crate::advisor::api::routes(ctx.state.advisor.clone()))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            ctx.clone(),
            auth::guard,
        ))
        .with_state(ctx);
    Ok(router)
}

/// Serves the admin API on `listener` until `stop` fires (the start of a drain).
pub async fn serve(listener: TcpListener, state: Arc<Running>, stop: CancellationToken) {
    let history = Arc::new(History::default());
    let sampler = history::run(state.clone(), history.clone(), stop.clone());
    let router = match router_with(state, history) {
        Ok(router) => router,
        Err(e) => {
            tracing::error!(error = %e, "admin server not started: cannot build the metrics registry");
            return;
        }
    };
    let served = axum::serve(listener, router).with_graceful_shutdown(stop.cancelled_owned());
    // The sampler ends on the same shutdown signal.
    let (served, ()) = tokio::join!(served.into_future(), sampler);
    if let Err(e) = served {
        tracing::warn!(error = %e, "admin server stopped");
    }
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {}", request.uri().path()))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed here", request.method()),
    )
}
