//! Startup decoding: the packets a client sends before the regular protocol
//! (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage) and the password-family
//! bodies of authentication.
//!
//! Input: the bytes a client sends first (length word, then the body). `read_packet`
//! reads them from the socket; the parsers also get `input[4..]` as a body.
//!
//! Asserts, beyond "no panic":
//! - `read_packet` finishes on bytes at hand (never waits for bytes that will not
//!   come), rejects lengths outside 8..=10000 and otherwise agrees with `parse_packet`;
//! - a StartupMessage re-encodes to exactly the bytes it was parsed from, a
//!   CancelRequest carries the body's two words, and any error is one that the bytes
//!   justify;
//! - SASLInitialResponse and PasswordMessage parsers return slices of their input that
//!   match the declared lengths and terminators.

#![no_main]

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use libfuzzer_sys::fuzz_target;
use pgsidecar::protocol::startup::{
    parse_packet, parse_password, parse_sasl_initial, read_packet, StartupMessage, StartupPacket,
    StartupReadError, MAX_STARTUP_PACKET,
};
use pgsidecar::protocol::ProtocolError;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

fuzz_target!(|data: &[u8]| {
    check_read_packet(data);
    let body = data.get(4..).unwrap_or_default();
    check_parse_packet(body);
    check_sasl_initial(body);
    check_password(body);
});

fn check_read_packet(data: &[u8]) {
    let mut reader = data;
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(result) = pin!(read_packet(&mut reader)).poll(&mut cx) else {
        panic!("read_packet waits although every byte is at hand");
    };
    if data.is_empty() {
        assert!(matches!(result, Ok(None)));
        return;
    }
    if data.len() < 4 {
        assert!(matches!(result, Err(StartupReadError::Io(_))));
        return;
    }
    let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
    if !(8..=MAX_STARTUP_PACKET).contains(&len) {
        assert!(matches!(
            result,
            Err(StartupReadError::Protocol(ProtocolError::StartupLength(n))) if n == len
        ));
        return;
    }
    if data.len() < len {
        assert!(matches!(result, Err(StartupReadError::Io(_))));
        return;
    }
    let expected = parse_packet(&data[4..len]);
    match (result, expected) {
        (Ok(Some(got)), Ok(want)) => assert_eq!(got, want),
        (Err(StartupReadError::Protocol(got)), Err(want)) => assert_eq!(got, want),
        (got, want) => panic!("read_packet gave {got:?}, parse_packet {want:?}"),
    }
}

fn check_parse_packet(body: &[u8]) {
    let code = body
        .get(..4)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    match parse_packet(body) {
        Ok(StartupPacket::SslRequest) => assert_eq!(code, Some(SSL_REQUEST)),
        Ok(StartupPacket::GssEncRequest) => assert_eq!(code, Some(GSSENC_REQUEST)),
        Ok(StartupPacket::Cancel { pid, secret }) => {
            assert_eq!(code, Some(CANCEL_REQUEST));
            assert_eq!(&body[4..8], pid.to_be_bytes());
            assert_eq!(&body[8..12], secret.to_be_bytes());
        }
        Ok(StartupPacket::Startup(message)) => {
            let encoded = encode(&message);
            assert!(
                body.starts_with(&encoded),
                "{message:?} re-encodes to other bytes"
            );
            for (key, value) in &message.params {
                assert!(!key.is_empty() && !key.contains('\0') && !value.contains('\0'));
                let first = message.params.iter().find(|(k, _)| k == key);
                assert_eq!(message.get(key), first.map(|(_, v)| v.as_str()));
            }
        }
        Err(ProtocolError::UnsupportedVersion { major, minor }) => {
            let code = code.expect("a version without a code");
            assert!(major != 3 && ![SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST].contains(&code));
            assert_eq!(code, i32::from(major) << 16 | i32::from(minor));
        }
        Err(ProtocolError::Malformed(what)) => {
            assert!(matches!(what, "startup" | "cancel"));
            let justified = match code {
                None => true,
                Some(CANCEL_REQUEST) => body.len() < 12,
                Some(_) => params_are_malformed(&body[4..]),
            };
            assert!(justified, "{what} rejected although well formed");
        }
        Err(other) => panic!("parse_packet reported {other:?}"),
    }
}

/// The bytes of a StartupMessage body with these values.
fn encode(message: &StartupMessage) -> Vec<u8> {
    let version = u32::from(message.major) << 16 | u32::from(message.minor);
    let mut out = version.to_be_bytes().to_vec();
    for (key, value) in &message.params {
        out.extend_from_slice(key.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out.push(0);
    out
}

/// True when the parameter list is not `(key NUL value NUL)* NUL` in UTF-8.
fn params_are_malformed(mut rest: &[u8]) -> bool {
    loop {
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return true;
        };
        if std::str::from_utf8(&rest[..end]).is_err() {
            return true;
        }
        if end == 0 {
            return false;
        }
        rest = &rest[end + 1..];
        let Some(end) = rest.iter().position(|&b| b == 0) else {
            return true;
        };
        if std::str::from_utf8(&rest[..end]).is_err() {
            return true;
        }
        rest = &rest[end + 1..];
    }
}

fn check_sasl_initial(body: &[u8]) {
    let Some(nul) = body.iter().position(|&b| b == 0) else {
        assert!(parse_sasl_initial(body).is_err());
        return;
    };
    let declared = body
        .get(nul + 1..nul + 5)
        .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let result = parse_sasl_initial(body);
    let utf8 = std::str::from_utf8(&body[..nul]).is_ok();
    match (declared, result) {
        (Some(n), Ok((mechanism, data))) => {
            assert!(utf8 && mechanism.as_bytes() == &body[..nul]);
            let start = nul + 5;
            match usize::try_from(n) {
                Ok(n) => assert_eq!(data, &body[start..start + n]),
                // -1 means "no initial response".
                Err(_) => assert!(data.is_empty()),
            }
        }
        (Some(n), Err(_)) => {
            let fits = usize::try_from(n).map_or(true, |n| body.len() >= nul + 5 + n);
            assert!(
                !utf8 || !fits,
                "a well-formed SASLInitialResponse was rejected"
            );
        }
        (None, result) => assert!(result.is_err()),
    }
}

fn check_password(body: &[u8]) {
    match (parse_password(body), body.iter().position(|&b| b == 0)) {
        (Ok(password), Some(nul)) => assert_eq!(password, &body[..nul]),
        (Err(_), None) => {}
        (got, nul) => panic!("parse_password gave {got:?} with the NUL at {nul:?}"),
    }
}
