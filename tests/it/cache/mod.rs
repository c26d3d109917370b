//! The result cache against a real PostgreSQL: installing the invalidation triggers,
//! the eligibility proof, the LISTEN channel (writes from anywhere, DDL, loss), and
//! operating it (HTTP, metrics, console). Each test gets its own database.

mod admin;
mod checker;
mod eligibility;
mod install;
mod listen;
mod wire;

use std::time::Duration;

use pgsidecar::cache::config::CacheMode;
use tokio_postgres::Client;

use crate::common::{connect, database_url, direct, init_logging, Proxy};

/// A throwaway database, dropped (with its connections) at the end of the test.
pub struct CacheDb {
    pub name: String,
    pub url: String,
}

impl CacheDb {
    pub async fn create(setup: &str) -> CacheDb {
        init_logging();
        let name = format!(
            "pgsidecar_cache_{}_{:08x}",
            std::process::id(),
            rand::random::<u32>()
        );
        direct()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        let url = with_dbname(&database_url(), &name);
        let db = CacheDb { name, url };
        if !setup.is_empty() {
            db.client().await.batch_execute(setup).await.expect("setup");
        }
        db
    }

    pub async fn client(&self) -> Client {
        connect(&self.url).await
    }

    /// Installs the triggers the way `pgsidecar cache install` does.
    pub async fn install(&self) -> String {
        let pg: tokio_postgres::Config = self.url.parse().expect("url");
        pgsidecar::cache::install::run(&pg, true)
            .await
            .expect("install")
    }

    /// A proxy in front of this database with the cache in `mode`.
    pub async fn proxy(&self, mode: CacheMode, token: Option<&str>) -> Proxy {
        let url = self.url.clone();
        let token = token.map(str::to_owned);
        Proxy::with(move |c| {
            c.upstream = url;
            c.cache.mode = mode;
            c.cache.notify_lag_bound = Duration::from_millis(500);
            c.admin_token = token;
        })
        .await
    }
}

impl Drop for CacheDb {
    fn drop(&mut self) {
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                direct()
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await
            })
        })
        .join();
    }
}

fn with_dbname(url: &str, dbname: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let (scheme, rest) = base.split_once("://").expect("URL with a scheme");
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    format!("{scheme}://{authority}/{dbname}{query}")
}

/// Polls `f` every 10 ms until it is true or `limit` passes.
pub async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = tokio::time::Instant::now();
    while start.elapsed() < limit {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    f()
}
