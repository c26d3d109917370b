use super::*;
use crate::session::pipeline::Tx;
use crate::tls::ClientStream;
use tokio::net::{TcpListener, TcpStream};

/// A relay whose client is one end of a loopback connection (kept open by the caller).
async fn relay() -> (Relay, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap());
    let (peer, accepted) = tokio::join!(peer, listener.accept());
    let relay = Relay::new(
        ClientStream::Plain(accepted.unwrap().0),
        Setup::plain(1 << 20),
    );
    (relay, peer.unwrap())
}

/// Found by the `backend_relay` fuzz target: a server frame declaring a length below 4
/// used to stop the relay's scan without an error, so the server's bytes piled up
/// unforwarded and the client waited forever. Now the server counts as lost.
#[tokio::test]
async fn a_server_frame_shorter_than_its_header_loses_the_server() {
    let (mut relay, _peer) = relay().await;
    relay.wire.sbuf.extend_from_slice(b"Z\0\0\0\x05I");
    relay.wire.sbuf.extend_from_slice(b"R\0\0\0\0S\0\0\0\x04");
    let err = relay.scan_server().unwrap_err();
    assert_eq!(err, ProtocolError::BadLength { tag: b'R', len: 0 });
    // The frame before it was forwarded; nothing after it was.
    assert_eq!(relay.wire.s_fwd, 6);
    assert_eq!(relay.pipe.state.tx, Tx::Idle);
}

#[tokio::test]
async fn server_frames_are_forwarded_and_followed() {
    let (mut relay, _peer) = relay().await;
    relay
        .wire
        .sbuf
        .extend_from_slice(b"S\0\0\0\x0ba\0b\0c\0\0Z\0\0\0\x05T");
    relay.scan_server().unwrap();
    assert_eq!(relay.wire.s_fwd, relay.wire.sbuf.len());
    assert_eq!(relay.pipe.state.tx, Tx::InTransaction);
    assert_eq!(relay.pipe.reported, [("a".to_string(), "b".to_string())]);
}
