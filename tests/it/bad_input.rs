//! Bad input from one client gets 08P01 and closes that client only; a silent client is
//! dropped after client_login_timeout. Nothing a client sends can panic the proxy.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::raw::{error_code, frame, query, startup_packet, Raw};
use crate::common::Proxy;

async fn expect_protocol_violation(raw: &mut Raw, what: &str) {
    let (tag, body) = raw
        .recv()
        .await
        .unwrap_or_else(|| panic!("{what}: no error sent"));
    assert_eq!(tag, b'E', "{what}");
    assert_eq!(error_code(&body), "08P01", "{what}");
    assert!(raw.recv().await.is_none(), "{what}: connection closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_oversized_messages_get_08p01() {
    let proxy = Proxy::with(|c| c.max_message_size = 64 * 1024).await;
    let bystander = proxy.client().await;

    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&frame(b'?', b"hello")).await;
    expect_protocol_violation(&mut raw, "unknown message type").await;

    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    raw.send(&[b'Q', 0, 0, 0, 2]).await;
    expect_protocol_violation(&mut raw, "length below 4").await;

    let (mut raw, _) = Raw::login(proxy.addr, "postgres", "postgres").await;
    let big = vec![b'x'; 100 * 1024];
    raw.send(&query(&String::from_utf8(big).unwrap())).await;
    expect_protocol_violation(&mut raw, "oversized message").await;

    // A bad startup packet: absurd length.
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    stream
        .write_all(&[0x7f, 0xff, 0xff, 0xff, 0, 3, 0, 0])
        .await
        .unwrap();
    let mut raw = Raw::from_stream(stream);
    expect_protocol_violation(&mut raw, "startup length").await;

    // Protocol version 2 is refused.
    let mut packet = startup_packet("postgres", "postgres");
    packet[4..8].copy_from_slice(&(2i32 << 16).to_be_bytes());
    let mut raw = raw_from(proxy.addr).await;
    raw.send(&packet).await;
    expect_protocol_violation(&mut raw, "protocol 2").await;

    // Garbage bytes from a fuzzer-like client never take the proxy down.
    for seed in 0u64..50 {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        let junk: Vec<u8> = (0..64)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let _ = s.write_all(&junk).await;
        let mut sink = [0u8; 256];
        let _ = tokio::time::timeout(Duration::from_millis(200), s.read(&mut sink)).await;
    }

    // Everyone else carries on.
    let row = bystander.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 1);
    proxy.stop().await;
}

async fn raw_from(addr: std::net::SocketAddr) -> Raw {
    let stream = TcpStream::connect(addr).await.unwrap();
    Raw::from_stream(stream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_closed_after_login_timeout() {
    let proxy = Proxy::with(|c| c.client_login_timeout = Duration::from_millis(300)).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(Duration::from_secs(3), stream.read(&mut buf))
        .await
        .expect("closed within the login timeout")
        .unwrap_or(0);
    assert_eq!(n, 0, "closed without a word (no startup packet was sent)");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssl_and_gss_requests_are_declined_then_startup_works() {
    let proxy = Proxy::with(|_| {}).await;
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();
    for code in [80_877_103i32, 80_877_104] {
        let mut packet = 8u32.to_be_bytes().to_vec();
        packet.extend(code.to_be_bytes());
        stream.write_all(&packet).await.unwrap();
        let mut answer = [0u8; 1];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"N");
    }
    let mut raw = Raw::from_stream(stream);
    raw.send(&startup_packet("postgres", "postgres")).await;
    let greeting = raw.until_ready().await;
    assert_eq!(greeting.last().unwrap(), &(b'Z', b"I".to_vec()));
    // NegotiateProtocolVersion for 3.1 with an unknown _pq_ option.
    let mut packet = startup_packet("postgres", "postgres");
    packet[4..8].copy_from_slice(&((3i32 << 16) | 1).to_be_bytes());
    let mut body = packet[4..packet.len() - 1].to_vec();
    body.extend_from_slice(b"_pq_.fancy\0on\0\0");
    let mut packet = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    packet.extend(body);
    let mut raw = raw_from(proxy.addr).await;
    raw.send(&packet).await;
    let (tag, body) = raw.recv().await.unwrap();
    assert_eq!(tag, b'v');
    assert_eq!(&body[..4], &0i32.to_be_bytes(), "newest minor version 0");
    assert_eq!(&body[4..8], &1i32.to_be_bytes());
    assert_eq!(&body[8..], b"_pq_.fancy\0");
    let rest = raw.until_ready().await;
    assert_eq!(rest.last().unwrap().0, b'Z');
    proxy.stop().await;
}
