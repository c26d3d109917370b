//! `GET /api/show/{pools|clients|servers}`: what the SQL console's `SHOW POOLS`,
//! `SHOW CLIENTS` and `SHOW SERVERS` answer, with the same columns, as JSON for the web
//! console: `{"columns": [...], "data": [[...]], "total": n, "has_more": bool}`, cells
//! as text or null, at most `limit` rows (1 to 1,000, default 500).

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};

use super::error::ApiError;
use super::params::{Params, RawParams};
use super::Ctx;

const MAX_ROWS: usize = 1000;
const DEFAULT_ROWS: usize = 500;

pub async fn show(
    State(ctx): State<Arc<Ctx>>,
    path: Result<Path<String>, PathRejection>,
    raw: RawParams,
) -> Result<Json<Value>, ApiError> {
    let Path(what) = path.map_err(|e| ApiError::bad_request(format!("malformed path: {e}")))?;
    let mut p = Params::new(raw)?;
    let limit = match p.take("limit")? {
        None => DEFAULT_ROWS,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=MAX_ROWS).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid limit {raw:?}: expected a number from 1 to {MAX_ROWS}"
                )))
            }
        },
    };
    p.finish(&["limit"])?;
    let (columns, mut rows) = crate::console::show_table(&ctx.state, &what).ok_or_else(|| {
        ApiError::not_found(format!(
            "no such list {what:?}: expected pools, clients or servers"
        ))
    })?;
    let total = rows.len();
    rows.truncate(limit);
    Ok(Json(json!({
        "columns": columns,
        "data": rows,
        "total": total,
        "has_more": total > limit,
    })))
}
