//! Transparency of the greeting: ParameterStatus values reach the client exactly as the
//! server reports them, whether or not the login needed a server.

use crate::common::raw::Raw;
use crate::common::Proxy;

fn status(frames: &[(u8, Vec<u8>)], name: &str) -> Option<String> {
    frames.iter().filter(|f| f.0 == b'S').find_map(|(_, body)| {
        let mut parts = body.split(|&b| b == 0);
        let k = parts.next()?;
        let v = parts.next()?;
        (k == name.as_bytes()).then(|| String::from_utf8_lossy(v).into_owned())
    })
}

async fn login_with(addr: std::net::SocketAddr, extra: &[(&str, &str)]) -> Vec<(u8, Vec<u8>)> {
    let mut params = vec![("user", "postgres"), ("database", "postgres")];
    params.extend_from_slice(extra);
    let packet = crate::common::raw::startup_packet_with(&params);
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut raw = Raw::from_stream(stream);
    raw.send(&packet).await;
    raw.until_ready().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameter_status_is_what_the_server_says() {
    let proxy = Proxy::with(|_| {}).await;
    let direct_greeting = {
        let url = crate::common::database_url();
        let u = pgsidecar::config::Upstream::parse(&url).unwrap();
        let addr = format!("{}:{}", u.host, u.port).parse().unwrap();
        login_with(addr, &[("client_encoding", "utf8")]).await
    };
    // Twice: the first login opens a server, the second may use the pool's cache.
    for _ in 0..2 {
        let frames = login_with(
            proxy.addr,
            &[
                ("client_encoding", "utf8"),
                ("application_name", "param-test"),
                ("DateStyle", "ISO, DMY"),
            ],
        )
        .await;
        assert_eq!(frames.last().unwrap().0, b'Z');
        assert_eq!(status(&frames, "client_encoding").as_deref(), Some("UTF8"));
        assert_eq!(
            status(&frames, "application_name").as_deref(),
            Some("param-test")
        );
        assert_eq!(status(&frames, "DateStyle").as_deref(), Some("ISO, DMY"));
        for name in [
            "server_version",
            "server_encoding",
            "integer_datetimes",
            "TimeZone",
        ] {
            assert_eq!(
                status(&frames, name),
                status(&direct_greeting, name),
                "{name} differs from a direct connection"
            );
        }
        assert!(frames.iter().any(|f| f.0 == b'K'), "BackendKeyData sent");
    }
    // Plain clients take the cached greeting too.
    let frames = login_with(proxy.addr, &[]).await;
    assert_eq!(
        status(&frames, "client_encoding"),
        status(&direct_greeting, "client_encoding")
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_gets_the_servers_error() {
    let proxy = Proxy::with(|_| {}).await;
    let url = proxy.url("postgres", "no_such_database_xyz");
    let err = crate::common::try_connect(&url).await.expect_err("refused");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "3D000");
    assert_eq!(
        db.message(),
        "database \"no_such_database_xyz\" does not exist"
    );
    let url = proxy.url("no_such_role_xyz", "postgres");
    let err = crate::common::try_connect(&url).await.expect_err("refused");
    let db = err.as_db_error().expect("a server error");
    assert_eq!(db.code().code(), "28000");
    assert_eq!(db.message(), "role \"no_such_role_xyz\" does not exist");
    proxy.stop().await;
}
