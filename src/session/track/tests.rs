use super::*;
use crate::stats::Window;

/// A tracker fed as the pipeline feeds it: frames resolved in a statement registry.
struct Fed {
    tracker: Tracker,
    statements: crate::session::statements::Statements,
    analyzer: Arc<Analyzer>,
}

impl Fed {
    fn client_frame(&mut self, tag: u8, body: &[u8]) {
        let (t, s, a) = (&mut self.tracker, &mut self.statements, &self.analyzer);
        crate::session::pipeline::track::observe_frame(t, s, a, tag, body);
    }

    fn server_frame(&mut self, tag: u8, body: &[u8]) {
        self.tracker.server_frame(Backend::of(tag), body);
    }
}

fn tracker() -> (Fed, Arc<Registry>) {
    let registry = Arc::new(Registry::new(5000));
    let analyzer = Arc::new(Analyzer::new(1000));
    let measure = Measure {
        analyzer: analyzer.clone(),
        registry: registry.clone(),
        clock: crate::stats::StatsClock::new(),
    };
    let fed = Fed {
        tracker: Tracker::new(measure, "db", "user", None),
        statements: crate::session::statements::Statements::new(None),
        analyzer,
    };
    (fed, registry)
}

#[test]
fn rows_from_command_tags() {
    assert_eq!(rows_of(b"SELECT 5\0"), 5);
    assert_eq!(rows_of(b"INSERT 0 7\0"), 7);
    assert_eq!(rows_of(b"CREATE TABLE\0"), 0);
    assert_eq!(rows_of(b"garbage"), 0);
}

#[tokio::test]
async fn an_unknown_portal_keeps_its_place_among_the_responses() {
    let (mut t, registry) = tracker();
    // A portal of a statement the tracker never saw parsed (SQL PREPARE), then a known one.
    t.client_frame(b'B', b"\0from_sql_prepare\0\0\0\0\0\0\0");
    t.client_frame(b'E', b"\0\0\0\0\0");
    t.client_frame(b'P', b"known\0SELECT 1\0\0\0");
    t.client_frame(b'B', b"\0known\0\0\0\0\0\0\0");
    t.client_frame(b'E', b"\0\0\0\0\0");
    t.client_frame(b'S', b"");
    t.server_frame(b'C', b"SELECT 5\0");
    t.server_frame(b'C', b"SELECT 1\0");
    t.server_frame(b'Z', b"I");
    let rows = registry.snapshot(Window::All, 0);
    let known: Vec<_> = rows.iter().filter(|r| r.calls > 0).collect();
    assert_eq!(known.len(), 1);
    assert_eq!(
        (known[0].calls, known[0].rows),
        (1, 1),
        "not the other portal's 5 rows"
    );
}

/// `cargo test --release --lib track_cost -- --ignored --nocapture`
#[test]
#[ignore]
fn track_cost() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    rt.block_on(async {
        let (mut t, _) = tracker();
        let n = 200_000;
        let started = std::time::Instant::now();
        for i in 0..n {
            let q = format!(
                "SELECT abalance FROM pgbench_accounts WHERE aid = {};\0",
                i % 100_000
            );
            t.client_frame(b'Q', q.as_bytes());
            t.server_frame(b'C', b"SELECT 1\0");
            t.server_frame(b'Z', b"I");
        }
        let per = started.elapsed().as_nanos() / n;
        println!("tracker cost per simple query: {per} ns (includes a format! of the query)");
    });
}
