//! Session state in transaction mode: settings a client changes (SET, RESET,
//! `set_config`) follow it to every server and never reach another client; what cannot
//! follow it (LISTEN, session advisory locks, temporary tables, SQL PREPARE) pins it to
//! its server,
//! counted by reason, and the server is reset when the client leaves.

use std::time::Duration;

use tokio_postgres::{Client, SimpleQueryMessage};

use crate::common::http::{one, Http};
use crate::common::{direct, unique, Proxy};

/// The first column of the first row of `sql`.
async fn value(client: &Client, sql: &str) -> String {
    let messages = client.simple_query(sql).await.unwrap();
    messages
        .iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0).unwrap_or("NULL").to_string()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

async fn run(client: &Client, sql: &str) {
    client.simple_query(sql).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_follow_their_client_and_no_one_else() {
    let proxy = Proxy::with(|c| c.pool_size = 2).await;
    let (a, b) = (proxy.client().await, proxy.client().await);
    let default_path = value(&b, "SHOW search_path").await;
    run(&a, "SET search_path = app_a, public").await;
    run(&a, "SET statement_timeout = '1234ms'").await;
    // B gets the server A just used (the idle list is LIFO) and sees the defaults.
    assert_eq!(value(&b, "SHOW search_path").await, default_path);
    assert_eq!(value(&b, "SHOW statement_timeout").await, "0");
    // B holds one server in a transaction, so A lands on the other: its settings follow.
    run(&b, "BEGIN").await;
    assert_eq!(value(&a, "SHOW search_path").await, "app_a, public");
    assert_eq!(value(&a, "SHOW statement_timeout").await, "1234ms");
    run(&b, "COMMIT").await;
    // set_config(…, false) is a session SET too; RESET and rolled-back SETs undo.
    run(&a, "SELECT set_config('search_path', 'via_fn', false)").await;
    assert_eq!(value(&a, "SHOW search_path").await, "via_fn");
    assert_eq!(value(&b, "SHOW search_path").await, default_path);
    run(&a, "RESET search_path").await;
    run(&a, "BEGIN; SET search_path = rolled_back; ROLLBACK").await;
    run(&a, "BEGIN; SET LOCAL statement_timeout = '5s'; COMMIT").await;
    run(&b, "BEGIN").await;
    assert_eq!(value(&a, "SHOW search_path").await, default_path);
    assert_eq!(value(&a, "SHOW statement_timeout").await, "1234ms");
    run(&b, "COMMIT").await;
    run(&a, "RESET ALL").await;
    assert_eq!(value(&a, "SHOW statement_timeout").await, "0");
    assert_eq!(value(&b, "SHOW statement_timeout").await, "0");
    // SET ROLE follows too, and never reaches B.
    let role = unique("pgsc_role");
    let admin = direct().await;
    admin
        .batch_execute(&format!("CREATE ROLE {role}"))
        .await
        .unwrap();
    run(&a, &format!("SET ROLE {role}")).await;
    assert_eq!(value(&b, "SELECT current_user").await, "postgres");
    run(&b, "BEGIN").await;
    assert_eq!(value(&a, "SELECT current_user").await, role);
    run(&b, "COMMIT").await;
    run(&a, "RESET ROLE").await;
    assert_eq!(value(&a, "SELECT current_user").await, "postgres");
    proxy.stop().await;
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
}

/// B takes the server A just released (LIFO), unless A is pinned to it.
async fn b_busy(b: &Client) {
    run(b, "BEGIN").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_advisory_locks_and_temp_tables_pin_the_client() {
    // Room for five pinned clients and one busy one.
    let proxy = Proxy::with(|c| c.pool_size = 6).await;
    let http = Http::new(&proxy);
    let lock = 4_242_000 + i64::from(std::process::id() % 1000);
    // LISTEN: later transactions still see the channel.
    let (a, b) = (proxy.client().await, proxy.client().await);
    run(&a, "LISTEN pgsidecar_pin_test").await;
    b_busy(&b).await;
    assert_eq!(
        value(&a, "SELECT pg_catalog.pg_listening_channels()").await,
        "pgsidecar_pin_test"
    );
    run(&b, "COMMIT").await;
    // A session advisory lock is still A's to unlock.
    let (c, d) = (proxy.client().await, proxy.client().await);
    run(&c, &format!("SELECT pg_advisory_lock({lock})")).await;
    b_busy(&d).await;
    let unlocked = value(&c, &format!("SELECT pg_advisory_unlock({lock})")).await;
    assert_eq!(
        unlocked, "t",
        "the lock is held by the pinned client's own session"
    );
    run(&c, &format!("SELECT pg_advisory_lock({lock})")).await;
    run(&d, "COMMIT").await;
    // A temporary table stays reachable.
    let (e, f) = (proxy.client().await, proxy.client().await);
    let t = unique("pin_tmp");
    run(&e, &format!("CREATE TEMP TABLE {t} (a int)")).await;
    b_busy(&f).await;
    run(&e, &format!("INSERT INTO {t} VALUES (1)")).await;
    assert_eq!(value(&e, &format!("SELECT count(*) FROM {t}")).await, "1");
    run(&f, "COMMIT").await;
    // A cursor WITH HOLD outlives its transaction on its server.
    let (i, j) = (proxy.client().await, proxy.client().await);
    run(
        &i,
        "DECLARE pin_c CURSOR WITH HOLD FOR SELECT generate_series(1, 3)",
    )
    .await;
    b_busy(&j).await;
    assert_eq!(value(&i, "FETCH 2 FROM pin_c").await, "1");
    run(&i, "CLOSE pin_c").await;
    run(&j, "COMMIT").await;
    // SQL PREPARE: EXECUTE and DEALLOCATE find it.
    let (g, h) = (proxy.client().await, proxy.client().await);
    run(&g, "PREPARE pin_q (int) AS SELECT $1 * 7").await;
    b_busy(&h).await;
    assert_eq!(value(&g, "EXECUTE pin_q(6)").await, "42");
    run(&g, "DEALLOCATE pin_q").await;
    run(&h, "COMMIT").await;
    let m = http.metrics().await;
    let reasons = [
        "listen",
        "advisory_lock",
        "temp_table",
        "cursor_with_hold",
        "sql_prepare",
    ];
    for reason in reasons {
        let labels = [("reason", reason)];
        assert_eq!(
            one(&m, "pgsidecar_pinned_clients_total", &labels),
            1.0,
            "{reason}"
        );
    }
    // When C leaves, its server is reset before reuse: the lock is released.
    drop(c);
    let held =
        format!("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = {lock}");
    let check = direct().await;
    let mut released = false;
    for _ in 0..100 {
        let n: i64 = check.query_one(held.as_str(), &[]).await.unwrap().get(0);
        if n == 0 {
            released = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(released, "the pinned client's advisory lock outlived it");
    proxy.stop().await;
}
