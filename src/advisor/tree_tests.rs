use super::*;

fn parse(sql: &str) -> Vec<Level> {
    let sql = sql.to_string();
    crate::query::worker::run(move || levels(&sql)).expect("worker")
}

fn uses(level: &Level) -> Vec<(Option<&str>, &str, &Use)> {
    level
        .uses
        .iter()
        .map(|u| (u.qualifier.as_deref(), u.column.as_str(), &u.what))
        .collect()
}

#[test]
fn equality_range_sort_and_output() {
    let l = parse(
        "SELECT id, title FROM conversations c WHERE c.status = $1 AND quality_score >= $2 \
         ORDER BY created_at DESC LIMIT 20",
    );
    assert_eq!(l.len(), 1);
    assert_eq!(
        l[0].scope,
        vec![("c".to_string(), "conversations".to_string())]
    );
    let u = uses(&l[0]);
    assert!(u.contains(&(Some("c"), "status", &Use::Eq)), "{u:?}");
    assert!(u.contains(&(None, "quality_score", &Use::Range)), "{u:?}");
    assert!(u.contains(&(None, "created_at", &Use::Sort(true))), "{u:?}");
    assert!(u.contains(&(None, "title", &Use::Output)), "{u:?}");
    assert!(!l[0].star);
}

#[test]
fn constants_in_and_joins() {
    let l = parse(
        "SELECT * FROM conversations c JOIN chunks k ON k.conversation_id = c.id \
         WHERE c.status = 'pending_review' AND c.tier IN ('a', 'b')",
    );
    let u = uses(&l[0]);
    assert!(
        u.contains(&(Some("c"), "status", &Use::Const("'pending_review'".into()))),
        "{u:?}"
    );
    assert!(
        u.contains(&(Some("k"), "conversation_id", &Use::Eq)),
        "{u:?}"
    );
    assert!(u.contains(&(Some("c"), "tier", &Use::Eq)), "{u:?}");
    assert!(l[0].star);
}

#[test]
fn gin_operators_and_text_search() {
    let l = parse(
        "SELECT id FROM conversations WHERE metadata @> $1 AND category && $2 AND title ILIKE $3 \
         AND to_tsvector('english', c.title || ' ' || persona) @@ plainto_tsquery('english', $4)",
    );
    let u = uses(&l[0]);
    assert!(u.contains(&(None, "metadata", &Use::Contain)), "{u:?}");
    assert!(u.contains(&(None, "category", &Use::Contain)), "{u:?}");
    assert!(u.contains(&(None, "title", &Use::Trigram)), "{u:?}");
    let (expr, first) = &l[0].text_search[0];
    assert_eq!(expr, "to_tsvector('english', title || ' ' || persona)");
    assert_eq!(first.column, "title");
}

#[test]
fn updates_deletes_subqueries_and_junk() {
    let l = parse("UPDATE t SET a = 1 WHERE b = $1");
    assert!(uses(&l[0]).contains(&(None, "b", &Use::Eq)));
    let l = parse("DELETE FROM t WHERE id IN (SELECT tid FROM u WHERE x > 5)");
    assert_eq!(l.len(), 2, "{l:?}");
    assert!(parse("SELEC nonsense").is_empty());
    assert!(parse("SELECT 1").is_empty());
}
