use super::*;
use crate::session::relay::{Relay, Setup};
use crate::tls::ClientStream;
use tokio::net::{TcpListener, TcpStream};

/// A relay in `pooling` mode whose client is one end of a loopback connection.
async fn relay(pooling: Pooling) -> (Relay, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let peer = TcpStream::connect(listener.local_addr().unwrap());
    let (peer, accepted) = tokio::join!(peer, listener.accept());
    let mut setup = Setup::plain(1 << 20);
    setup.pooling = pooling;
    if pooling == Pooling::Transaction {
        setup.known = Some(Default::default());
        setup.rename_for = Some(7);
    }
    let relay = Relay::new(ClientStream::Plain(accepted.unwrap().0), setup);
    (relay, peer.unwrap())
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut f = vec![tag];
    f.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    f.extend_from_slice(body);
    f
}

/// Puts `frame` after what is framed and runs the client pipeline on it.
fn send(r: &mut Relay, frame: &[u8]) -> (Action, Msg) {
    let at = r.wire.c_fwd;
    r.wire.cbuf.truncate(at);
    r.wire.cbuf.extend_from_slice(frame);
    let mut msg = Msg::new(frame[0], at, frame.len());
    let action = client(&mut r.pipe, &mut r.wire, &mut msg);
    if matches!(action, Action::Forward | Action::NeedsServer) {
        r.wire.c_fwd = msg.at + msg.len;
    }
    (action, msg)
}

#[tokio::test]
async fn a_request_without_a_server_needs_one_at_its_end() {
    let (mut r, _peer) = relay(Pooling::Session).await;
    let (action, msg) = send(&mut r, &frame(b'P', b"\0SELECT 1\0\0\0"));
    assert_eq!(action, Action::Forward, "Parse alone does not flush");
    assert!(msg.stmt.is_some(), "resolved once, by the rename step");
    assert_eq!(r.pipe.state.batch, Batch::Open);
    let (action, _) = send(&mut r, &frame(b'S', b""));
    assert_eq!(action, Action::NeedsServer);
    assert_eq!(
        (r.pipe.state.pending, r.pipe.state.batch),
        (1, Batch::Synced)
    );
    let (action, msg) = send(&mut r, &frame(b'Q', b"SELECT 1\0"));
    assert_eq!(action, Action::NeedsServer);
    assert_eq!(msg.query.unwrap().parts().count(), 1);
}

#[tokio::test]
async fn terminate_is_hidden_and_the_client_leaves() {
    let (mut r, _peer) = relay(Pooling::Session).await;
    let (action, _) = send(&mut r, &frame(b'X', b""));
    assert_eq!(action, Action::Hide);
    assert_eq!(r.pipe.state.client, Client::Leaving);
}

#[tokio::test]
async fn a_discarded_batch_is_hidden_up_to_its_sync_which_is_answered() {
    let (mut r, _peer) = relay(Pooling::Session).await;
    send(&mut r, &frame(b'P', b"\0SELECT 1\0\0\0"));
    r.fail_waiting_requests(&frame(b'E', b"SERROR\0C08006\0Mno server\0\0"));
    assert_eq!(r.pipe.state.batch, Batch::Discarding);
    assert_eq!(
        send(&mut r, &frame(b'B', b"\0\0\0\0\0\0\0\0")).0,
        Action::Hide
    );
    let (action, _) = send(&mut r, &frame(b'S', b""));
    assert_eq!(action, Action::Answer(Bytes::from_static(b"Z\0\0\0\x05I")));
    assert_eq!(r.pipe.state.batch, Batch::Synced);
}

#[tokio::test]
async fn named_parses_alone_are_answered_without_a_server() {
    let (mut r, _peer) = relay(Pooling::Transaction).await;
    let (action, _) = send(&mut r, &frame(b'P', b"q1\0SELECT 1\0\0\0"));
    assert_eq!(action, Action::Forward);
    assert!(r.wire.cbuf.windows(6).any(|w| w == b"pgsc_7"), "renamed");
    let (action, msg) = send(&mut r, &frame(b'S', b""));
    assert_eq!(
        action,
        Action::Answer(Bytes::from_static(b"1\0\0\0\x04Z\0\0\0\x05I"))
    );
    assert_eq!(
        (msg.at, r.wire.c_fwd),
        (0, 0),
        "the Parses go with their Sync"
    );
    assert_eq!(r.pipe.state.pending, 0);
}

#[tokio::test]
async fn deallocate_of_a_protocol_statement_is_answered_here() {
    let (mut r, _peer) = relay(Pooling::Transaction).await;
    send(&mut r, &frame(b'P', b"q1\0SELECT 1\0\0\0"));
    send(&mut r, &frame(b'S', b""));
    r.wire.cbuf.clear();
    let (action, _) = send(&mut r, &frame(b'Q', b"DEALLOCATE q1\0"));
    let Action::Answer(bytes) = action else {
        panic!("not answered: {action:?}");
    };
    assert!(bytes.starts_with(b"C\0\0\0\x0fDEALLOCATE\0"));
    assert!(r.pipe.statements.get("q1").is_none());
    let (action, _) = send(&mut r, &frame(b'Q', b"DEALLOCATE q1\0"));
    assert_eq!(
        action,
        Action::NeedsServer,
        "unknown now: the server answers"
    );
}

#[tokio::test]
async fn effects_are_noted_in_transaction_mode_and_pins_change_the_pooling() {
    let (mut r, _peer) = relay(Pooling::Transaction).await;
    send(&mut r, &frame(b'Q', b"SET search_path = x\0"));
    assert!(r.pipe.unchecked.settings);
    send(&mut r, &frame(b'Q', b"SELECT unknown_fn(1)\0"));
    assert_eq!(r.pipe.unchecked.opacity.unknown, ["unknown_fn"]);
    send(&mut r, &frame(b'Q', b"LISTEN jobs\0"));
    assert_eq!(r.pipe.state.pooling, Pooling::Pinned(PinReason::Listen));
    let (mut s, _peer) = relay(Pooling::Session).await;
    send(&mut s, &frame(b'Q', b"SET search_path = x\0"));
    assert!(!s.pipe.unchecked.any(), "session mode watches nothing");
}

#[tokio::test]
async fn ready_for_query_is_where_the_transaction_changes() {
    let (mut r, _peer) = relay(Pooling::Session).await;
    send(&mut r, &frame(b'Q', b"BEGIN\0"));
    let rfq = frame(b'Z', b"T");
    r.wire.sbuf.extend_from_slice(&rfq);
    let reply = Reply {
        tag: Backend::of(b'Z'),
        at: 0,
        len: rfq.len(),
    };
    assert_eq!(server(&mut r.pipe, &mut r.wire, &reply), Action::Forward);
    assert_eq!(
        (r.pipe.state.tx, r.pipe.state.pending),
        (Tx::InTransaction, 0)
    );
}
