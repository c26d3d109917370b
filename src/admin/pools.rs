//! `GET /api/pools`: one row per (database, user) pool, sorted by database then user,
//! filtered by `database` and `user`, paged with `limit` and `cursor`: a rendering of
//! each pool's [`Status`].

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::cursor::{Cursor, Position};
use super::error::ApiError;
use super::params::{Params, RawParams};
use super::rows::ms;
use super::Ctx;
use crate::pool::Status;

fn position(pool: &Status) -> Position {
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
    let (pools, _) = ctx.state.status();
    let mut pools: Vec<Status> = (pools.into_iter())
        .filter(|pool| database.as_ref().is_none_or(|d| *d == pool.key.database))
        .filter(|pool| user.as_ref().is_none_or(|u| *u == pool.key.user))
        .filter(|pool| {
            after
                .as_ref()
                .is_none_or(|a| position(pool).listing_cmp(a).is_gt())
        })
        .collect();
    let has_more = pools.len() > limit;
    pools.truncate(limit);
    let next_cursor = pools.last().filter(|_| has_more).map(|last| {
        ctx.cursors.seal(&Cursor {
            scope,
            snapshot: None,
            after: position(last),
        })
    });
    let data: Vec<Value> = pools.iter().map(pool_row).collect();
    Ok(Json(
        json!({ "data": data, "next_cursor": next_cursor, "has_more": has_more }),
    ))
}

fn pool_row(pool: &Status) -> Value {
    let (servers, clients) = (&pool.servers, &pool.clients);
    json!({
        "database": pool.key.database,
        "user": pool.key.user,
        "mode": pool.mode_name(),
        "pool_size": pool.size,
        "min_pool_size": pool.min_size,
        "servers_active": servers.active,
        "servers_idle": servers.idle,
        "servers_testing": servers.testing,
        "servers_login": servers.login,
        "clients_active": clients.active,
        "clients_waiting": clients.waiting,
        "clients_idle": clients.idle,
        "checkouts": pool.checkouts,
        "checkout_timeouts": pool.checkout_timeouts,
        "connect_errors": pool.connect_errors,
        "avg_wait_ms": ms(pool.avg_wait_us()),
        "max_wait_ms": ms(pool.wait_us_max),
        "paused": pool.paused,
    })
}
