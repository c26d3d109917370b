//! The console's process controls: `PAUSE [db]` (new checkouts wait; answers once no
//! server is in use), `RESUME [db]`, and `RELOAD`. `SHUTDOWN` is the session's (it must
//! answer before the drain closes the connection).

use std::sync::Arc;

use tokio::task::JoinSet;

use super::session::Failure;
use crate::pool::Pool;
use crate::state::Running;

/// The pools `db` names (every pool when `None`); an error when it names none.
fn pools_of(state: &Running, db: Option<&str>) -> Result<Vec<Arc<Pool>>, Failure> {
    let pools: Vec<Arc<Pool>> = state
        .all_pools()
        .into_iter()
        .filter(|p| db.is_none_or(|db| p.key.database == db))
        .collect();
    match db {
        Some(db) if pools.is_empty() => {
            let message = match state.config().databases.contains_key(db) {
                true => {
                    format!("pgsidecar: database \"{db}\" has no pool yet (no client has used it)")
                }
                false => format!("pgsidecar: no such database: {db}"),
            };
            Err(Failure::new("3D000", message))
        }
        _ => Ok(pools),
    }
}

/// Pauses the pools and waits (up to `shutdown_timeout`) until none has a server in
/// use. On timeout the pools stay paused and the error names the busy ones.
pub async fn pause(state: &Running, db: Option<&str>) -> Result<(), Failure> {
    let pools = pools_of(state, db)?;
    let limit = state.config().shutdown_timeout;
    tracing::info!(
        database = db.unwrap_or("*"),
        pools = pools.len(),
        "PAUSE from the admin console"
    );
    let mut waits = JoinSet::new();
    for pool in pools {
        waits.spawn(async move { (pool.key.to_string(), pool.pause(limit).await) });
    }
    let mut busy = Vec::new();
    while let Some(done) = waits.join_next().await {
        match done {
            Ok((_, true)) => {}
            Ok((key, false)) => busy.push(key),
            Err(e) => busy.push(format!("(a pool whose wait failed: {e})")),
        }
    }
    if busy.is_empty() {
        return Ok(());
    }
    busy.sort();
    Err(Failure::new(
        "57014",
        format!(
            "pgsidecar: PAUSE gave up after {} ms with servers still in use in {}; the pools stay paused (RESUME undoes)",
            limit.as_millis(),
            busy.join(", ")
        ),
    ))
}

/// Resumes the paused pools of `db` (of every database when `None`).
pub fn resume(state: &Running, db: Option<&str>) -> Result<(), Failure> {
    let paused: Vec<Arc<Pool>> = pools_of(state, db)?
        .into_iter()
        .filter(|p| p.is_paused())
        .collect();
    if paused.is_empty() {
        let message = match db {
            Some(db) => format!("pgsidecar: database {db} is not paused"),
            None => "pgsidecar: no pool is paused".to_string(),
        };
        return Err(Failure::new("55000", message));
    }
    tracing::info!(
        database = db.unwrap_or("*"),
        pools = paused.len(),
        "RESUME from the admin console"
    );
    for pool in paused {
        pool.resume();
    }
    Ok(())
}

/// Re-reads the configuration; on error the running one stays and the error is shown
/// on one line.
pub fn reload(state: &super::Ctx) -> Result<(), Failure> {
    tracing::info!("RELOAD from the admin console");
    state.reload().map_err(|e| {
        tracing::warn!(error = %e, "reload failed; keeping the running configuration");
        let text = e.to_string();
        let one_line: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        Failure::new("F0000", format!("RELOAD failed: {}", one_line.join(" ")))
    })
}
