//! The index advisor against the real PostgreSQL with HypoPG: each test gets a
//! throwaway database (`CREATE EXTENSION hypopg`), runs a workload through the proxy,
//! and reads the advice back through `/api/advice`, the console and `pgsidecar advise`.

mod closed_loop;
mod fallback;
mod n_plus_one;
mod suggestions;

use std::time::Duration;

use serde_json::Value;
use tokio_postgres::Client;

use crate::common::http::Http;
use crate::common::{connect, Proxy};
use crate::store::TestDb;

/// A proxy whose advisor runs only on request.
pub async fn proxy() -> Proxy {
    Proxy::with(|c| {
        c.advisor.interval = Duration::ZERO;
        c.admin_users = vec!["postgres".into()];
    })
    .await
}

/// The `conversations` schema of the inventory, without secondary indexes, loaded
/// with `rows` rows and analysed; `extensions` are created first.
pub async fn conversations(db: &TestDb, rows: i64, extensions: &[&str]) -> Client {
    let client = db.client().await;
    for e in extensions {
        client
            .batch_execute(&format!("CREATE EXTENSION IF NOT EXISTS {e}"))
            .await
            .unwrap();
    }
    client
        .batch_execute(
            "CREATE TABLE conversations (
                id bigint PRIMARY KEY,
                slug text UNIQUE,
                session_key text NOT NULL,
                status text NOT NULL,
                tier text NOT NULL,
                persona text NOT NULL,
                emotion text NOT NULL,
                title text NOT NULL,
                quality_score numeric NOT NULL,
                category text[] NOT NULL,
                metadata jsonb NOT NULL,
                created_at timestamptz NOT NULL,
                updated_at timestamptz NOT NULL
            );
            CREATE TABLE chunks (
                id bigserial PRIMARY KEY,
                conversation_id bigint NOT NULL REFERENCES conversations (id),
                body text NOT NULL
            );
            CREATE INDEX chunks_conversation ON chunks (conversation_id);",
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO conversations
             SELECT g, 'slug-' || g, md5(g::text),
                    CASE WHEN g % 100 = 0 THEN 'pending_review' ELSE (ARRAY['draft','approved','rejected'])[1 + g % 3] END,
                    (ARRAY['template','scenario','edge_case'])[1 + g % 3],
                    'persona-' || (g % 150), 'emotion-' || (g % 170),
                    'conversation about topic ' || md5((g * 7)::text),
                    (g % 1000) / 100.0,
                    ARRAY['cat-' || (g % 50), 'cat-' || (g % 7)],
                    jsonb_build_object('source', 'src-' || (g % 400), 'lang', 'en'),
                    now() - make_interval(secs => g * 60),
                    now() - make_interval(secs => g * 30)
             FROM generate_series(1, $1::int8) g",
            &[&rows],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO chunks (conversation_id, body)
                 SELECT 1 + g % 200, 'chunk ' || g FROM generate_series(1, 2000) g;
             ANALYZE;",
        )
        .await
        .unwrap();
    client
}

/// A client through the proxy to the test database.
pub async fn through(proxy: &Proxy, db: &TestDb) -> Client {
    connect(&proxy.url("postgres", &db.name)).await
}

/// Runs a pass and answers every advice item (following cursors, 5 per page).
pub async fn advice(http: &Http) -> (Value, Vec<Value>) {
    let answer = http
        .client
        .post(format!("{}/api/advice/run", http.base))
        .send()
        .await
        .expect("run answers");
    let status = answer.status();
    let run: Value = answer.json().await.expect("json");
    assert_eq!(status, 200, "{run}");
    let mut items = Vec::new();
    let mut path = "/api/advice?limit=5".to_string();
    loop {
        let (status, page) = http.json(&path).await;
        assert_eq!(status, 200, "{page}");
        items.extend(page["data"].as_array().cloned().unwrap_or_default());
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/advice?limit=5&cursor={c}"),
            None => return (page["pass"].clone(), items),
        }
    }
}

pub fn keys(item: &Value) -> Vec<String> {
    item["index"]["keys"]
        .as_array()
        .map(|k| {
            k.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}
