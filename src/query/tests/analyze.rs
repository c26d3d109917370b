//! Analysis through pg_query: command types, tables, normalization, fallback and cache.

use crate::query::{split_statements, Analyzer, Command, QueryInfo};
use std::sync::Arc;

fn info(sql: &str) -> Arc<QueryInfo> {
    Analyzer::new(100).analyze_text(sql)
}

#[test]
fn literals_are_never_kept() {
    let i = info("SELECT * FROM users WHERE email = 'alice@example.com' AND id = 42");
    assert!(i.parsed);
    assert!(
        i.normalized.contains("$1") && i.normalized.contains("$2"),
        "{}",
        i.normalized
    );
    assert!(!i.normalized.contains("alice") && !i.normalized.contains("42"));
    assert_eq!(i.fingerprint_hex().len(), 16);
    assert_eq!(i.fingerprint_hex(), format!("{:016x}", i.fingerprint));
    // Comments (which may carry values, e.g. sqlcommenter tags) are dropped too.
    let c = info("SELECT /* user='bob' */ 1 FROM t -- id=7\n WHERE a = 2");
    assert!(
        !c.normalized.contains("bob") && !c.normalized.contains('7'),
        "{}",
        c.normalized
    );
}

#[test]
fn commands_by_statement_kind() {
    let cases = [
        ("SELECT 1", Command::Select),
        ("VALUES (1)", Command::Select),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
            Command::Select,
        ),
        ("SELECT * INTO t2 FROM t", Command::Ddl),
        ("INSERT INTO t SELECT * FROM u", Command::Insert),
        ("UPDATE t SET a = 1", Command::Update),
        (
            "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE",
            Command::Update,
        ),
        ("DELETE FROM t", Command::Delete),
        ("COPY t FROM STDIN", Command::Copy),
        ("COPY (SELECT 1) TO STDOUT", Command::Copy),
        ("BEGIN", Command::Transaction),
        ("COMMIT", Command::Transaction),
        ("ROLLBACK TO SAVEPOINT s", Command::Transaction),
        ("PREPARE TRANSACTION 'x'", Command::Transaction),
        ("CREATE TABLE t (a int)", Command::Ddl),
        ("ALTER TABLE t ADD COLUMN b int", Command::Ddl),
        ("DROP TABLE t", Command::Ddl),
        ("TRUNCATE t", Command::Ddl),
        ("CREATE INDEX i ON t (a)", Command::Ddl),
        ("CREATE VIEW v AS SELECT 1", Command::Ddl),
        ("GRANT SELECT ON t TO bob", Command::Ddl),
        ("SET search_path = a", Command::Utility),
        ("SHOW work_mem", Command::Utility),
        ("EXPLAIN SELECT 1", Command::Utility),
        ("VACUUM t", Command::Utility),
        ("DO $$BEGIN END$$", Command::Utility),
        ("CALL p(1)", Command::Utility),
        ("LISTEN c", Command::Utility),
        ("DEALLOCATE ALL", Command::Utility),
        ("PREPARE p AS SELECT 1", Command::Utility),
        ("EXECUTE p", Command::Utility),
        ("DECLARE c CURSOR FOR SELECT 1", Command::Utility),
        ("FETCH 10 FROM c", Command::Utility),
    ];
    let analyzer = Analyzer::new(100);
    for (sql, cmd) in cases {
        let i = analyzer.analyze_text(sql);
        assert!(i.parsed, "{sql}");
        assert_eq!(i.command, cmd, "{sql}");
    }
    assert_eq!(Command::Transaction.as_str(), "TRANSACTION");
}

#[test]
fn tables_read_and_written() {
    let cases: [(&str, &[&str], &[&str]); 10] = [
        (
            "SELECT * FROM a JOIN s.b ON a.id = b.id WHERE a.x IN (SELECT x FROM c)",
            &["a", "c", "s.b"],
            &[],
        ),
        ("INSERT INTO t SELECT * FROM u", &["u"], &["t"]),
        (
            "UPDATE t SET a = u.a FROM u WHERE t.id = u.id",
            &["u"],
            &["t"],
        ),
        ("DELETE FROM t USING u WHERE t.id = u.id", &["u"], &["t"]),
        ("COPY t FROM STDIN", &[], &["t"]),
        ("COPY t TO STDOUT", &["t"], &[]),
        (
            "COPY (SELECT * FROM t JOIN u USING (id)) TO STDOUT",
            &["t", "u"],
            &[],
        ),
        (
            "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d, u",
            &["u"],
            &["t"],
        ),
        ("CREATE TABLE n AS SELECT * FROM t", &["t"], &["n"]),
        ("SELECT a FROM t t1, t t2", &["t"], &[]),
    ];
    let analyzer = Analyzer::new(100);
    for (sql, read, written) in cases {
        let i = analyzer.analyze_text(sql);
        assert_eq!(i.tables_read, read, "{sql}");
        assert_eq!(i.tables_written, written, "{sql}");
    }
}

#[test]
fn unparsable_statements_are_still_analyzed() {
    let analyzer = Analyzer::new(100);
    for (sql, same_shape, cmd) in [
        ("SELEC 1", "selec 2", Command::Utility),
        (
            "SELECT FROM WHERE (((",
            "SELECT FROM WHERE (((",
            Command::Select,
        ),
        (
            "UPDATE t SET a = 'x' WHERE",
            "UPDATE t SET a = 'y' WHERE",
            Command::Update,
        ),
    ] {
        let a = analyzer.analyze_text(sql);
        let b = analyzer.analyze_text(same_shape);
        assert!(!a.parsed, "{sql}");
        assert_eq!(a.command, cmd, "{sql}");
        assert_eq!(a.fingerprint, b.fingerprint, "{sql}");
        // Stable: the same text in a fresh analyzer gives the same fingerprint.
        assert_eq!(info(sql).fingerprint, a.fingerprint);
        assert!(!a.normalized.contains('\''), "{}", a.normalized);
    }
    assert_eq!(
        analyzer
            .analyze_text("UPDATE t SET a = 'x' WHERE")
            .normalized,
        "UPDATE t SET a = $1 WHERE"
    );
    // A NUL byte cannot reach the C library at all.
    assert!(!info("SELECT '\0'").parsed);
}

#[test]
fn same_fingerprint_for_literal_variants() {
    let a = info("SELECT * FROM t WHERE id IN (1, 2, 3) AND name = 'x'");
    let b = info("SELECT * FROM t WHERE id IN (4) AND name = 'yy'");
    assert_eq!(a.fingerprint, b.fingerprint);
    assert_ne!(
        a.fingerprint,
        info("SELECT * FROM t WHERE id = 1").fingerprint
    );
}

#[test]
fn cache_hits_for_the_same_shape() {
    let analyzer = Analyzer::new(100);
    let sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 1; \
               SELECT abalance FROM pgbench_accounts WHERE aid = 2";
    let infos: Vec<_> = split_statements(sql)
        .map(|s| analyzer.analyze(&s))
        .collect();
    assert!(Arc::ptr_eq(&infos[0], &infos[1]));
    assert_eq!(
        (analyzer.misses(), analyzer.hits(), analyzer.len()),
        (1, 1, 1)
    );
    analyzer.analyze_text("select  abalance from pgbench_accounts where aid = $1");
    assert_eq!((analyzer.misses(), analyzer.hits()), (1, 2));
    analyzer.analyze_text("SELECT 1");
    assert_eq!((analyzer.misses(), analyzer.len()), (2, 2));
}

#[test]
fn cache_capacity_is_respected() {
    let analyzer = Analyzer::new(50);
    for i in 0..500 {
        analyzer.analyze_text(&format!("SELECT c{i} FROM t"));
    }
    assert_eq!(analyzer.misses(), 500);
    assert!(analyzer.len() <= 50, "{}", analyzer.len());
    assert!(!analyzer.is_empty());
}

#[test]
fn empty_parse_text_is_an_empty_utility() {
    for sql in ["", " ;", "-- nothing"] {
        let i = info(sql);
        assert_eq!(i.command, Command::Utility);
        assert_eq!(i.normalized, "");
        assert!(i.tables_read.is_empty() && i.tables_written.is_empty());
    }
}

#[test]
fn analyzer_is_shareable() {
    fn shared<T: Send + Sync + 'static>() {}
    shared::<Analyzer>();
    shared::<QueryInfo>();
}
