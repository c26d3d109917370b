//! The shared job queue: disjoint claims, backoff, dedupe, stale claims.

use std::collections::HashSet;
use std::time::Duration;

use pgsidecar::store::{JobStatus, Store};
use serde_json::{json, Value};

use super::{count, TestDb};

#[tokio::test]
async fn concurrent_claimers_get_disjoint_jobs() {
    let db = TestDb::create().await;
    let a = db.migrated("a").await;
    let b = db.store("b").await;
    for i in 0..40 {
        a.enqueue("explain", json!({ "n": i }), None)
            .await
            .unwrap()
            .unwrap();
    }
    // Four claimers (two per sidecar) race one job at a time until the queue is empty.
    let claimers = [a.clone(), a.clone(), b.clone(), b.clone()].map(|store| {
        tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let jobs = store.claim(3).await.unwrap();
                if jobs.is_empty() {
                    return got;
                }
                for job in jobs {
                    assert_eq!(job.status, JobStatus::Running);
                    assert_eq!(job.attempts, 1);
                    assert_eq!(job.claimed_by.as_deref(), Some(store.sidecar()));
                    got.push(job.id);
                }
            }
        })
    });
    let mut all = Vec::new();
    let mut per_claimer = Vec::new();
    for claimer in claimers {
        let got = claimer.await.unwrap();
        per_claimer.push(got.len());
        all.extend(got);
    }
    let unique: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 40, "every job claimed once: {per_claimer:?}");
    assert_eq!(unique.len(), 40, "no job claimed twice");
    let running = count(
        &db.client().await,
        "SELECT count(*) FROM pgsidecar.jobs WHERE status = 'running'",
    )
    .await;
    assert_eq!(running, 40);
}

/// Seconds until the job becomes claimable again.
async fn delay(db: &TestDb, id: i64) -> f64 {
    db.client()
        .await
        .query_one(
            "SELECT date_part('epoch', run_at - now()) FROM pgsidecar.jobs WHERE id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0)
}

/// Claims until the job comes back, at most `within`.
async fn claim_when_due(store: &Store, id: i64, within: Duration) -> i32 {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(job) = store.claim(1).await.unwrap().into_iter().next() {
            assert_eq!(job.id, id);
            return job.attempts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "job {id} never came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn failures_back_off_exponentially_then_fail() {
    let db = TestDb::create().await;
    let store = db
        .migrated("a")
        .await
        .with_retry_base(Duration::from_millis(300));
    let id = store
        .enqueue("explain", json!({}), None)
        .await
        .unwrap()
        .unwrap();

    assert_eq!(store.claim(1).await.unwrap()[0].attempts, 1);
    assert_eq!(
        store.fail(id, "boom 1").await.unwrap(),
        Some(JobStatus::Pending)
    );
    let first = delay(&db, id).await;
    assert!(
        (0.1..=0.3).contains(&first),
        "first retry after 300 ms: {first}"
    );
    assert!(
        store.claim(1).await.unwrap().is_empty(),
        "not before its run_at"
    );

    assert_eq!(claim_when_due(&store, id, Duration::from_secs(3)).await, 2);
    assert_eq!(
        store.fail(id, "boom 2").await.unwrap(),
        Some(JobStatus::Pending)
    );
    let second = delay(&db, id).await;
    assert!(
        (0.4..=0.6).contains(&second),
        "second retry after 600 ms: {second}"
    );

    assert_eq!(claim_when_due(&store, id, Duration::from_secs(3)).await, 3);
    assert_eq!(
        store.fail(id, "boom 3").await.unwrap(),
        Some(JobStatus::Failed)
    );
    let job = store.job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Failed);
    assert_eq!(job.attempts, 3);
    assert_eq!(job.error.as_deref(), Some("boom 3"));
    assert!(job.finished_at.is_some());
    assert_eq!(job.payload, Value::Null, "a failed job keeps no payload");
    // Finished for good: not claimable, and a late fail or complete changes nothing.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(store.claim(1).await.unwrap().is_empty());
    assert_eq!(store.fail(id, "late").await.unwrap(), None);
    assert!(!store.complete(id).await.unwrap());
    assert_eq!(
        store.job(id).await.unwrap().unwrap().error.as_deref(),
        Some("boom 3")
    );
}

#[tokio::test]
async fn dedupe_key_admits_one_job() {
    let db = TestDb::create().await;
    let store = db.migrated("a").await;
    let first = store
        .enqueue("explain", json!(1), Some("app/fp1"))
        .await
        .unwrap();
    assert!(first.is_some());
    assert_eq!(
        store
            .enqueue("explain", json!(2), Some("app/fp1"))
            .await
            .unwrap(),
        None
    );
    assert!(store
        .enqueue("explain", json!(3), Some("app/fp2"))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .enqueue("explain", json!(4), None)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .enqueue("explain", json!(5), None)
        .await
        .unwrap()
        .is_some());
    let page = store.list_jobs(None, None, 100).await.unwrap();
    let payloads: Vec<Value> = page.items.iter().map(|j| j.payload.clone()).collect();
    assert_eq!(payloads, vec![json!(5), json!(4), json!(3), json!(1)]);
    // The key stays taken once the job is done.
    store.claim(10).await.unwrap();
    assert!(store.complete(first.unwrap()).await.unwrap());
    assert_eq!(
        store
            .enqueue("explain", json!(6), Some("app/fp1"))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn complete_clear_and_status_filter() {
    let db = TestDb::create().await;
    let a = db.migrated("a").await;
    let b = db.store("b").await;
    let id = a
        .enqueue("explain", json!({"params": ["secret"]}), None)
        .await
        .unwrap()
        .unwrap();
    let other = a.enqueue("advise", json!({}), None).await.unwrap().unwrap();
    assert_eq!(a.claim(1).await.unwrap()[0].id, id);
    assert!(!b.complete(id).await.unwrap(), "b does not hold the job");
    assert!(a.complete(id).await.unwrap());
    // A finished job keeps no payload (an EXPLAIN job's holds private values).
    let job = a.job(id).await.unwrap().unwrap();
    assert_eq!((job.status, job.payload), (JobStatus::Done, Value::Null));
    assert!(job.finished_at.is_some());
    assert!(a.clear_payload(other).await.unwrap());
    assert_eq!(a.job(other).await.unwrap().unwrap().payload, Value::Null);

    let done = a.list_jobs(Some(JobStatus::Done), None, 10).await.unwrap();
    assert_eq!(
        done.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![id]
    );
    let pending = a
        .list_jobs(Some(JobStatus::Pending), None, 10)
        .await
        .unwrap();
    assert_eq!(
        pending.items.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![other]
    );
}

#[tokio::test]
async fn stale_claims_return_to_the_queue() {
    let db = TestDb::create().await;
    let a = db.migrated("a").await;
    let b = db.store("b").await;
    let id = a
        .enqueue("explain", json!({}), None)
        .await
        .unwrap()
        .unwrap();
    a.claim(1).await.unwrap();
    assert_eq!(
        b.requeue_stale(Duration::from_secs(3600)).await.unwrap(),
        0,
        "claim is fresh"
    );

    let client = db.client().await;
    let backdate = "UPDATE pgsidecar.jobs SET started_at = now() - interval '2 hours'";
    client.execute(backdate, &[]).await.unwrap();
    assert_eq!(b.requeue_stale(Duration::from_secs(3600)).await.unwrap(), 1);
    let job = b.job(id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Pending);
    assert_eq!(job.error.as_deref(), Some("abandoned by a"));
    assert!(
        !a.complete(id).await.unwrap(),
        "the dead claim no longer counts"
    );

    // b picks it up; the abandoned attempt counted.
    assert_eq!(b.claim(1).await.unwrap()[0].attempts, 2);
    assert!(b.complete(id).await.unwrap());
}
