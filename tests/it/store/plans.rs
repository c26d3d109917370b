//! Captured plans, plan-change detection, and the fleet-wide explain claim.

use std::time::Duration;

use pgsidecar::store::NewPlan;
use serde_json::json;

use super::TestDb;

pub fn plan(fingerprint: &str, hash: &str) -> NewPlan {
    NewPlan {
        database: "app".into(),
        fingerprint: fingerprint.into(),
        query: "SELECT * FROM t WHERE id = $1".into(),
        plan: json!([{ "Plan": { "Node Type": "Index Scan", "Total Cost": 8.27 } }]),
        plan_hash: hash.into(),
        total_cost: 8.27,
        actual_ms: Some(0.05),
        analyzed: true,
        params: Some(json!(["42"])),
        reason: Some("critical".into()),
        fallback_reason: None,
        p50_ms: Some(12.5),
    }
}

#[tokio::test]
async fn a_different_hash_is_a_plan_change() {
    let db = TestDb::create().await;
    let store = db.migrated("a").await;
    assert_eq!(
        store.insert_plan(&plan("fp1", "h1")).await.unwrap(),
        None,
        "first capture"
    );
    assert_eq!(
        store.insert_plan(&plan("fp1", "h1")).await.unwrap(),
        None,
        "same plan"
    );
    assert_eq!(
        store.insert_plan(&plan("fp2", "h9")).await.unwrap(),
        None,
        "other query"
    );
    assert_eq!(
        store
            .insert_plan(&plan("fp1", "h2"))
            .await
            .unwrap()
            .as_deref(),
        Some("h1")
    );
    let other_db = NewPlan {
        database: "other".into(),
        ..plan("fp1", "h3")
    };
    assert_eq!(
        store.insert_plan(&other_db).await.unwrap(),
        None,
        "per database"
    );

    let changes = store.list_plan_changes(None, None, None, 10).await.unwrap();
    assert_eq!(changes.items.len(), 1);
    let change = &changes.items[0];
    assert_eq!(
        (change.database.as_str(), change.fingerprint.as_str()),
        ("app", "fp1")
    );
    assert_eq!(
        (change.old_hash.as_str(), change.new_hash.as_str()),
        ("h1", "h2")
    );
    // Why the new plan was taken, and the p50 of both plans' windows.
    assert_eq!(change.reason.as_deref(), Some("critical"));
    assert_eq!(
        (change.old_p50_ms, change.new_p50_ms),
        (Some(12.5), Some(12.5))
    );

    let fp1 = store.list_plans(Some("fp1"), None, None, 10).await.unwrap();
    let hashes: Vec<&str> = fp1
        .items
        .iter()
        .map(|p| p.plan.plan_hash.as_str())
        .collect();
    assert_eq!(hashes, vec!["h3", "h2", "h1", "h1"]);
    let in_app = store
        .list_plans(Some("fp1"), Some("app"), None, 2)
        .await
        .unwrap();
    assert_eq!(in_app.items.len(), 2);
    assert_eq!(
        in_app.items[0].plan,
        plan("fp1", "h2"),
        "JSON columns round-trip"
    );
    assert_eq!(in_app.items[0].sidecar, "a");
    let rest = store
        .list_plans(Some("fp1"), Some("app"), in_app.next_before_id, 2)
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.next_before_id, None);
    let all = store.list_plans(None, None, None, 10).await.unwrap();
    assert_eq!(all.items.len(), 5);
}

/// Two sidecars capturing the same query at once still see each other's plan.
#[tokio::test]
async fn concurrent_captures_detect_the_change() {
    let db = TestDb::create().await;
    let a = db.migrated("a").await;
    let b = db.store("b").await;
    a.insert_plan(&plan("fp", "h1")).await.unwrap();
    let (pa, pb) = (plan("fp", "h2"), plan("fp", "h3"));
    let (ra, rb) = tokio::join!(a.insert_plan(&pa), b.insert_plan(&pb));
    let mut previous = vec![ra.unwrap(), rb.unwrap()];
    previous.sort();
    // One of them went first and saw h1; the other saw the first one's hash.
    assert!(
        previous == [Some("h1".into()), Some("h2".into())]
            || previous == [Some("h1".into()), Some("h3".into())],
        "{previous:?}"
    );
    assert_eq!(
        a.list_plan_changes(None, None, None, 10)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
}

#[tokio::test]
async fn explain_claim_is_exclusive_within_the_interval() {
    let db = TestDb::create().await;
    let a = db.migrated("a").await;
    let b = db.store("b").await;
    let hour = Duration::from_secs(3600);
    assert!(a.try_claim_explain("app", "fp", hour).await.unwrap());
    assert!(!a.try_claim_explain("app", "fp", hour).await.unwrap());
    assert!(!b.try_claim_explain("app", "fp", hour).await.unwrap());
    assert!(
        b.try_claim_explain("app", "fp2", hour).await.unwrap(),
        "per fingerprint"
    );
    assert!(
        b.try_claim_explain("other", "fp", hour).await.unwrap(),
        "per database"
    );

    // Backdated past the interval: claimable again, once.
    db.client()
        .await
        .execute(
            "UPDATE pgsidecar.explain_claims SET claimed_at = now() - interval '61 minutes'
             WHERE database = 'app' AND fingerprint = 'fp'",
            &[],
        )
        .await
        .unwrap();
    assert!(b.try_claim_explain("app", "fp", hour).await.unwrap());
    assert!(!a.try_claim_explain("app", "fp", hour).await.unwrap());

    // And in real time, with a short interval.
    let short = Duration::from_millis(300);
    assert!(a.try_claim_explain("app", "fp3", short).await.unwrap());
    assert!(!b.try_claim_explain("app", "fp3", short).await.unwrap());
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.try_claim_explain("app", "fp3", short).await.unwrap());
}

/// Many claimers racing for one fingerprint: exactly one wins.
#[tokio::test]
async fn explain_claim_race_has_one_winner() {
    let db = TestDb::create().await;
    let a = db.migrated("a").await;
    let b = db.store("b").await;
    let hour = Duration::from_secs(3600);
    let tries = (0..8).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tokio::spawn(async move { store.try_claim_explain("app", "hot", hour).await.unwrap() })
    });
    let mut winners = 0;
    for t in tries {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

/// `/api/queries` rows point to the newest plan of their shape, per database.
#[tokio::test]
async fn latest_plans_per_database_and_fingerprint() {
    let db = TestDb::create().await;
    let store = db.migrated("a").await;
    for hash in ["h1", "h2"] {
        store.insert_plan(&plan("fpa", hash)).await.unwrap();
    }
    let other = NewPlan {
        database: "other".into(),
        ..plan("fpa", "h9")
    };
    store.insert_plan(&other).await.unwrap();
    store.insert_plan(&plan("fpb", "h3")).await.unwrap();
    let found = store
        .latest_plans(&["fpa".to_string(), "missing".to_string()])
        .await
        .unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert_eq!(found[&("app".into(), "fpa".into())].plan_hash, "h2");
    assert_eq!(found[&("other".into(), "fpa".into())].plan_hash, "h9");
    assert!(store.latest_plans(&[]).await.unwrap().is_empty());
}
