use super::*;
use crate::query::Analyzer;

fn body(frame: &[u8]) -> &[u8] {
    &frame[5..]
}

fn analysis(analyzer: &Analyzer) -> Analysis<'_> {
    Analysis {
        analyzer,
        watch: true,
    }
}

#[test]
fn deallocate_statements() {
    use Deallocate::*;
    assert_eq!(deallocate_target("DEALLOCATE ALL"), Some(All));
    assert_eq!(
        deallocate_target("deallocate prepare q1;"),
        Some(Name("q1".into()))
    );
    assert_eq!(
        deallocate_target("DEALLOCATE \"Q1\""),
        Some(Name("Q1".into()))
    );
    assert_eq!(deallocate_target("DEALLOCATE Q1"), Some(Name("q1".into())));
    assert_eq!(deallocate_target("DEALLOCATE q1; SELECT 1"), None);
    assert_eq!(deallocate_target("SELECT 1"), None);
}

#[test]
fn names_are_rewritten_everywhere_and_forgotten_at_close() {
    let analyzer = Analyzer::new(10);
    let a = analysis(&analyzer);
    let mut s = Statements::new(Some(0x2a));
    let (stmt, renamed) = s.parse(b"q1\0SELECT $1\0\0\x01\0\0\0\x17", &a).unwrap();
    assert!(renamed);
    assert_eq!(
        s.rewritten(),
        b"P\0\0\0\x1epgsc_2a_0\0SELECT $1\0\0\x01\0\0\0\x17"
    );
    assert_eq!(&*stmt.param_types, &[0x17]);
    assert_eq!(stmt.sql(), "SELECT $1");
    let (bound, renamed) = s.bind(b"\0q1\0\0\0\0\0\0\0", false);
    assert!(renamed && Arc::ptr_eq(&bound.unwrap(), &stmt));
    assert_eq!(body(s.rewritten()), b"\0pgsc_2a_0\0\0\0\0\0\0\0");
    assert_eq!(statement_used(b'B', body(s.rewritten())), Some("pgsc_2a_0"));
    let (_, renamed) = s.describe_or_close(b'D', b"Sq1\0");
    assert!(renamed);
    assert_eq!(s.rewritten(), b"D\0\0\0\x0fSpgsc_2a_0\0");
    assert!(s.by_server_name("pgsc_2a_0").is_some());
    // Unnamed statements and portals pass as they are.
    assert!(!s.parse(b"\0SELECT 1\0\0\0", &a).unwrap().1);
    assert!(!s.describe_or_close(b'D', b"Pq1\0").1);
    assert!(s.describe_or_close(b'C', b"Sq1\0").1);
    assert_eq!(body(s.rewritten()), b"Spgsc_2a_0\0");
    assert!(!s.bind(b"\0q1\0\0\0\0\0\0\0", false).1, "closed");
    // Parsed again: a new server name.
    s.parse(b"q1\0SELECT 2\0\0\0", &a).unwrap();
    assert!(s.rewritten().windows(9).any(|w| w == b"pgsc_2a_1"));
}

#[test]
fn the_unnamed_statement_parsed_again_with_the_same_text_is_the_same_statement() {
    let analyzer = Analyzer::new(10);
    let a = analysis(&analyzer);
    let mut s = Statements::new(None);
    let (first, _) = s.parse(b"\0SELECT 1\0\0\0", &a).unwrap();
    let (again, _) = s.parse(b"\0SELECT 1\0\0\0", &a).unwrap();
    assert!(Arc::ptr_eq(&first, &again), "not analyzed again");
    let (other, _) = s.parse(b"\0SELECT 2\0\0\0", &a).unwrap();
    assert!(!Arc::ptr_eq(&first, &other));
    // Without renaming, a named statement keeps its name on servers.
    let (named, renamed) = s.parse(b"q\0SET x = 1\0\0\0", &a).unwrap();
    assert!(!renamed);
    assert_eq!(&*named.server_name, "q");
    assert!(
        named.effects.session.settings,
        "effects read once, at Parse"
    );
}

#[test]
fn portals_remember_their_statement_and_values_until_the_transaction_ends() {
    let analyzer = Analyzer::new(10);
    let mut s = Statements::new(None);
    s.parse(b"q\0SELECT $1\0\0\0", &analysis(&analyzer))
        .unwrap();
    s.bind(b"p\0q\0\0\0\0\x01\0\0\0\x017\0\0", true);
    let portal = s.portals.get("p").expect("bound");
    assert_eq!(portal.stmt.sql(), "SELECT $1");
    assert!(portal.complete && !portal.values.is_empty());
    s.bind(b"\0unknown\0\0\0\0\0\0\0", true);
    assert!(s.portals.get("").is_none(), "a statement not parsed here");
    s.bind(b"\0q\0\0\0\0\0\0\0", false);
    s.portals.end_of_transaction();
    assert!(s.portals.get("p").is_none() && s.portals.get("").is_some());
}

#[test]
fn deallocate_all_forgets_named_statements_and_servers_follow() {
    let analyzer = Analyzer::new(10);
    let a = analysis(&analyzer);
    let mut s = Statements::new(Some(1));
    s.parse(b"q\0SELECT 1\0\0\0", &a).unwrap();
    s.parse(b"\0SELECT 1\0\0\0", &a).unwrap();
    assert!(s.forget_name("q") && !s.forget_name("q"));
    s.parse(b"q\0SELECT 1\0\0\0", &a).unwrap();
    s.forget_all();
    assert!(s.get("q").is_none() && s.get("").is_some());
    assert!(s.forget_on_next_server);
}

#[test]
fn simple_texts_are_kept_when_repeated_and_shapes_shared() {
    let analyzer = Analyzer::new(10);
    let a = analysis(&analyzer);
    let mut s = Statements::new(None);
    let one = s.texts.resolve(b"SELECT 1; SELECT 2", &a).unwrap();
    assert_eq!(one.parts().count(), 2);
    let same_shape = s.texts.resolve(b"SELECT 3", &a).unwrap();
    let first = one.parts().next().unwrap();
    let other = same_shape.parts().next().unwrap();
    assert!(
        Arc::ptr_eq(&first.shape, &other.shape),
        "literals aside, one shape"
    );
    let again = s.texts.resolve(b"SELECT 1; SELECT 2", &a).unwrap();
    let kept = s.texts.resolve(b"SELECT 1; SELECT 2", &a).unwrap();
    assert!(Arc::ptr_eq(&again, &kept), "seen twice: kept by its text");
    assert!(s.texts.resolve(b"SELECT \xff", &a).is_none(), "not UTF-8");
    let dealloc = s.texts.resolve(b"DEALLOCATE q", &a).unwrap();
    assert_eq!(dealloc.deallocate, Some(Deallocate::Name("q".into())));
    let set = s.texts.resolve(b"SET search_path = x", &a).unwrap();
    assert!(set.effects.session.settings);
}
