//! What an EXPLAIN of a client's statement needs (its text, parameter types and bound
//! values), and running it on the proxy's own side connections.

use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use deadpool_postgres::RecyclingMethod;

use crate::config::{PoolSettings, Upstream};
use crate::explain::{CapturedPlan, ExplainLimits, ExplainRequest};
use crate::pool::side::{side_pool, SideTarget};

/// A client's statement, ready to be explained.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CaptureInput {
    /// The statement text (with `$n` placeholders for the extended protocol).
    pub sql: String,
    /// Parameter type OIDs from the client's Parse (0 = unspecified).
    pub param_types: Vec<u32>,
    /// Bound values (None = NULL).
    pub params: Vec<Option<Vec<u8>>>,
    /// As in Bind: empty = all text, one = for all, else one per parameter.
    pub param_formats: Vec<i16>,
}

impl CaptureInput {
    /// Simple-protocol text: the literals are in the text.
    pub fn text(sql: &str) -> CaptureInput {
        CaptureInput {
            sql: sql.to_string(),
            param_types: Vec::new(),
            params: Vec::new(),
            param_formats: Vec::new(),
        }
    }

    /// A prepared statement's text and types with the values of a Bind body from its
    /// parameter formats on (the portal and statement names already read). `None` when
    /// the body is cut short (a streamed Bind keeps only its start).
    pub fn bound(sql: &str, param_types: &[u32], bind_rest: &[u8]) -> Option<CaptureInput> {
        let mut r = Reader(bind_rest);
        let nformats = r.i16()?;
        let param_formats = (0..nformats).map(|_| r.i16()).collect::<Option<Vec<_>>>()?;
        let nparams = r.i16()?;
        let mut params = Vec::with_capacity(nparams.max(0) as usize);
        for _ in 0..nparams {
            let len = r.i32()?;
            params.push(if len < 0 {
                None
            } else {
                Some(r.take(len as usize)?.to_vec())
            });
        }
        Some(CaptureInput {
            sql: sql.to_string(),
            param_types: param_types.to_vec(),
            params,
            param_formats,
        })
    }

    /// The values as JSON for storage when `explain_store_params` is on: text-format
    /// values as strings, binary ones as hex.
    pub fn params_json(&self) -> serde_json::Value {
        let format_of = |i: usize| match self.param_formats.as_slice() {
            [] => 0,
            [one] => *one,
            many => many.get(i).copied().unwrap_or(0),
        };
        let values = self.params.iter().enumerate().map(|(i, v)| match v {
            None => serde_json::Value::Null,
            Some(bytes) if format_of(i) == 0 => {
                serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned())
            }
            Some(bytes) => serde_json::Value::String(format!("\\x{}", hex(bytes))),
        });
        serde_json::Value::Array(values.collect())
    }

    fn request(&self, role: Option<&str>) -> ExplainRequest {
        let params = self.params.iter();
        ExplainRequest {
            sql: self.sql.clone(),
            param_types: self.param_types.clone(),
            params: params.map(|p| p.clone().map(Bytes::from)).collect(),
            param_formats: self.param_formats.clone(),
            role: role.map(str::to_string),
        }
    }
}

/// An error and every cause under it, `: `-separated: a driver's "db error" alone
/// hides what the server said. Repeated texts are left out.
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }

    fn i16(&mut self) -> Option<i16> {
        Some(i16::from_be_bytes(self.take(2)?.try_into().ok()?))
    }

    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_be_bytes(self.take(4)?.try_into().ok()?))
    }
}

/// Side connections for EXPLAIN, one small pool per server (host, port, database, and
/// the proxy's own identity: the upstream URL's user), never a client's connection.
#[derive(Default)]
pub struct Capturer {
    pools: DashMap<PoolTarget, deadpool_postgres::Pool>,
}

/// Where a side pool connects; a reload that changes any of it gets a new pool.
#[derive(Clone, PartialEq, Eq, Hash)]
struct PoolTarget {
    host: String,
    port: u16,
    dbname: String,
    user: String,
    password: Option<String>,
}

impl Capturer {
    /// Explains `input` in `settings`' database, as `user` when the proxy's identity may
    /// switch to that role (so permissions and row security match the client's).
    pub async fn capture(
        &self,
        upstream: &Upstream,
        settings: &PoolSettings,
        user: &str,
        input: &CaptureInput,
        limits: &ExplainLimits,
    ) -> Result<CapturedPlan, String> {
        let pool = self.pool(upstream, settings);
        let target = format!(
            "database {:?} on {}:{} as {:?}",
            settings.server_dbname, settings.host, settings.port, upstream.user
        );
        let client = tokio::time::timeout(Duration::from_secs(10), pool.get())
            .await
            .map_err(|_| format!("no side connection to {target} within 10 s"))?
            .map_err(|e| format!("side connection to {target}: {}", causes(&e)))?;
        let role = (user != upstream.user).then_some(user);
        let captured = crate::explain::capture(&client, &input.request(role), limits).await;
        captured.map_err(|e| {
            if e.connection_unusable() {
                // Never hand this connection out again.
                drop(deadpool_postgres::Object::take(client));
            }
            e.to_string()
        })
    }

    fn pool(&self, upstream: &Upstream, settings: &PoolSettings) -> deadpool_postgres::Pool {
        let target = PoolTarget {
            host: settings.host.clone(),
            port: settings.port,
            dbname: settings.server_dbname.clone(),
            user: upstream.user.clone(),
            password: upstream.password.clone(),
        };
        if let Some(pool) = self.pools.get(&target) {
            return pool.clone();
        }
        let pool = side_pool(SideTarget {
            host: &settings.host,
            port: settings.port,
            dbname: &settings.server_dbname,
            user: &upstream.user,
            password: upstream.password.as_deref(),
            application_name: "pgsidecar explain",
            connect_timeout: Duration::from_secs(5),
            recycling: RecyclingMethod::Verified,
        });
        self.pools.insert(target, pool.clone());
        pool
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_values_are_read_after_the_names() {
        // formats: 1 × text; params: 2 → "42", NULL; then result formats (ignored).
        let mut body = vec![0, 1, 0, 0, 0, 2, 0, 0, 0, 2, b'4', b'2'];
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&[0, 0]);
        let input = CaptureInput::bound("SELECT $1, $2", &[23, 0], &body).unwrap();
        assert_eq!(input.params, vec![Some(b"42".to_vec()), None]);
        assert_eq!(input.param_formats, vec![0]);
        assert_eq!(input.params_json(), serde_json::json!(["42", null]));
        // Cut short: no input rather than wrong values.
        assert_eq!(CaptureInput::bound("SELECT $1", &[], &body[..8]), None);
    }
}
