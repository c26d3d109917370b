//! `GET /api/pools`: one row per (database, user) pool, sorted by database then user,
//! filtered by `database` and `user`, paged with `limit` and `cursor`. Clients are
//! counted from the client registry by the pool they log in to.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::cursor::{Cursor, Position};
use super::error::ApiError;
use super::params::{Params, RawParams};
use super::rows::ms;
use super::Ctx;
use crate::config::PoolMode;
use crate::pool::Pool;
use crate::session::ClientState;
use crate::state::Running;

/// Clients of one (database, user) by state: active, waiting, idle.
pub type ClientCounts = HashMap<(String, String), [u64; 3]>;

/// Counts logged-in clients per (database, user) and state.
pub fn client_counts(state: &Running) -> ClientCounts {
    let mut counts = ClientCounts::new();
    for client in state.clients_registry.list() {
        let id = &client.identity;
        let slot = match client.state() {
            ClientState::Active => 0,
            ClientState::Waiting => 1,
            ClientState::Idle => 2,
        };
        counts
            .entry((id.database.clone(), id.user.clone()))
            .or_default()[slot] += 1;
    }
    counts
}

/// Server connections of a pool: (active, idle, testing, login). A server being
/// tested was taken off the idle list, so it is not counted as active.
pub fn server_counts(pool: &Pool) -> [usize; 4] {
    let c = &pool.counters;
    let testing = c.testing.load(Ordering::Relaxed);
    let active = pool.active_count().saturating_sub(testing);
    let login = c.logging_in.load(Ordering::Relaxed);
    [active, pool.idle_count(), testing, login]
}

fn position(pool: &Pool) -> Position {
    Position {
        value: 0,
        database: pool.key.database.clone(),
        user: pool.key.user.clone(),
        fingerprint: 0,
    }
}

pub async fn list(State(ctx): State<Arc<Ctx>>, raw: RawParams) -> Result<Json<Value>, ApiError> {
    let mut p = Params::new(raw)?;
    let database = p.filter("database")?;
    let user = p.filter("user")?;
    let limit = p.limit()?;
    let token = p.filter("cursor")?;
    p.finish(&["database", "user", "limit", "cursor"])?;
    let scope = json!(["pools", database, user]).to_string();
    let after = match token {
        Some(token) => Some(ctx.cursors.open(&token, &scope)?.after),
        None => None,
    };
    let mut pools: Vec<Arc<Pool>> = (ctx.state.all_pools().into_iter())
        .filter(|pool| database.as_ref().is_none_or(|d| *d == pool.key.database))
        .filter(|pool| user.as_ref().is_none_or(|u| *u == pool.key.user))
        .filter(|pool| {
            after
                .as_ref()
                .is_none_or(|a| position(pool).listing_cmp(a).is_gt())
        })
        .collect();
    pools.sort_by(|a, b| position(a).listing_cmp(&position(b)));
    let has_more = pools.len() > limit;
    pools.truncate(limit);
    let next_cursor = pools.last().filter(|_| has_more).map(|last| {
        ctx.cursors.seal(&Cursor {
            scope,
            snapshot: None,
            after: position(last),
        })
    });
    let clients = client_counts(&ctx.state);
    let data: Vec<Value> = pools.iter().map(|pool| pool_row(pool, &clients)).collect();
    Ok(Json(
        json!({ "data": data, "next_cursor": next_cursor, "has_more": has_more }),
    ))
}

fn pool_row(pool: &Pool, clients: &ClientCounts) -> Value {
    let params = pool.params();
    let settings = &params.settings;
    let c = &pool.counters;
    let [active, idle, testing, login] = server_counts(pool);
    let key = (pool.key.database.clone(), pool.key.user.clone());
    let [cl_active, cl_waiting, cl_idle] = clients.get(&key).copied().unwrap_or_default();
    let (_, waits) = c.wait_histogram();
    let wait_total = c.wait_us_total.load(Ordering::Relaxed);
    let avg_wait_us = wait_total.checked_div(waits).unwrap_or(0);
    json!({
        "database": pool.key.database,
        "user": pool.key.user,
        "mode": match settings.mode {
            PoolMode::Session => "session",
            PoolMode::Transaction => "transaction",
        },
        "pool_size": settings.size,
        "min_pool_size": settings.min_size,
        "servers_active": active,
        "servers_idle": idle,
        "servers_testing": testing,
        "servers_login": login,
        "clients_active": cl_active,
        "clients_waiting": cl_waiting,
        "clients_idle": cl_idle,
        "checkouts": c.checkouts.load(Ordering::Relaxed),
        "checkout_timeouts": c.checkout_timeouts.load(Ordering::Relaxed),
        "connect_errors": c.connect_errors.load(Ordering::Relaxed),
        "avg_wait_ms": ms(avg_wait_us),
        "max_wait_ms": ms(c.wait_us_max.load(Ordering::Relaxed)),
        "paused": pool.is_paused(),
    })
}
