//! Messages the proxy writes itself (errors, authentication requests, the login
//! sequence) and the few server messages it reads (ErrorResponse, ParameterStatus).
//!
//! Encoding goes through pgwire's message types; reading is done by hand on borrowed bytes
//! so that malformed input yields `None` instead of a panic.

use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::response::{ErrorResponse, ReadyForQuery, TransactionStatus};
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, ParameterStatus, SecretKey,
};
use pgwire::messages::Message;

use super::read_cstr;

/// Severity of a message the proxy writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The statement failed; the connection goes on.
    Error,
    /// The connection ends after this message.
    Fatal,
}

impl Severity {
    fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "ERROR",
            Severity::Fatal => "FATAL",
        }
    }
}

fn encode<M: Message>(msg: &M, buf: &mut BytesMut) {
    // Encoding into a BytesMut cannot fail for the messages built here: their sizes are
    // computed from the data itself and there is no I/O.
    if let Err(e) = msg.encode(buf) {
        tracing::error!(error = %e, "failed to encode a protocol message");
    }
}

/// Appends an ErrorResponse.
pub fn error_response(buf: &mut BytesMut, severity: Severity, code: &str, message: &str) {
    let fields = vec![
        (b'S', severity.as_str().to_string()),
        (b'V', severity.as_str().to_string()),
        (b'C', code.to_string()),
        (b'M', message.to_string()),
    ];
    encode(&ErrorResponse::new(fields), buf);
}

/// Appends ReadyForQuery with the given status byte (`I`, `T` or `E`).
/// CommandComplete with `tag` (a NUL inside it would end it early, so NULs are dropped).
pub fn command_complete(buf: &mut BytesMut, tag: &str) {
    let bytes = tag.bytes().filter(|&b| b != 0);
    buf.put_u8(b'C');
    buf.put_u32((4 + bytes.clone().count() + 1) as u32);
    bytes.for_each(|b| buf.put_u8(b));
    buf.put_u8(0);
}

pub fn ready_for_query(buf: &mut BytesMut, status: u8) {
    let status = match status {
        b'T' => TransactionStatus::Transaction,
        b'E' => TransactionStatus::Error,
        _ => TransactionStatus::Idle,
    };
    encode(&ReadyForQuery::new(status), buf);
}

pub fn auth_ok(buf: &mut BytesMut) {
    encode(&Authentication::Ok, buf);
}

pub fn auth_cleartext(buf: &mut BytesMut) {
    encode(&Authentication::CleartextPassword, buf);
}

pub fn auth_md5(buf: &mut BytesMut, salt: [u8; 4]) {
    encode(&Authentication::MD5Password(salt.to_vec()), buf);
}

pub fn auth_sasl(buf: &mut BytesMut, mechanisms: &[&str]) {
    let list = mechanisms.iter().map(|m| m.to_string()).collect();
    encode(&Authentication::SASL(list), buf);
}

pub fn auth_sasl_continue(buf: &mut BytesMut, data: Vec<u8>) {
    encode(&Authentication::SASLContinue(Bytes::from(data)), buf);
}

pub fn auth_sasl_final(buf: &mut BytesMut, data: Vec<u8>) {
    encode(&Authentication::SASLFinal(Bytes::from(data)), buf);
}

pub fn parameter_status(buf: &mut BytesMut, name: &str, value: &str) {
    encode(
        &ParameterStatus::new(name.to_string(), value.to_string()),
        buf,
    );
}

pub fn backend_key_data(buf: &mut BytesMut, pid: i32, secret: i32) {
    encode(&BackendKeyData::new(pid, SecretKey::I32(secret)), buf);
}

/// Tells a client asking for protocol 3.x (x > 0) or `_pq_.` options that the proxy
/// speaks 3.0 and which options it ignored.
pub fn negotiate_protocol_version(buf: &mut BytesMut, unsupported: Vec<String>) {
    encode(&NegotiateProtocolVersion::new(0, unsupported), buf);
}

/// A simple Query message.
pub fn query(buf: &mut BytesMut, sql: &str) {
    buf.put_u8(b'Q');
    buf.put_u32((sql.len() + 5) as u32);
    buf.put_slice(sql.as_bytes());
    buf.put_u8(0);
}

/// The fields of an ErrorResponse or NoticeResponse that the proxy reports on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFields {
    pub severity: String,
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for ErrorFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)
    }
}

/// Reads an ErrorResponse body (after the 5-byte header).
pub fn parse_error_fields(body: &[u8]) -> ErrorFields {
    let mut fields = ErrorFields::default();
    let mut pos = 0;
    while let Some(&kind) = body.get(pos) {
        if kind == 0 {
            break;
        }
        pos += 1;
        let Some(value) = read_cstr(body, &mut pos) else {
            break;
        };
        match kind {
            b'V' => fields.severity = value.to_string(),
            b'S' if fields.severity.is_empty() => fields.severity = value.to_string(),
            b'C' => fields.code = value.to_string(),
            b'M' => fields.message = value.to_string(),
            _ => {}
        }
    }
    fields
}

/// Reads a ParameterStatus body into (name, value).
pub fn parse_parameter_status(body: &[u8]) -> Option<(&str, &str)> {
    let mut pos = 0;
    let name = read_cstr(body, &mut pos)?;
    let value = read_cstr(body, &mut pos)?;
    Some((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_round_trip() {
        let mut buf = BytesMut::new();
        error_response(&mut buf, Severity::Fatal, "08P01", "bad things");
        assert_eq!(buf[0], b'E');
        let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
        assert_eq!(len + 1, buf.len());
        let f = parse_error_fields(&buf[5..]);
        assert_eq!((f.severity.as_str(), f.code.as_str()), ("FATAL", "08P01"));
        assert_eq!(f.message, "bad things");
    }

    #[test]
    fn truncated_fields_do_not_panic() {
        let mut buf = BytesMut::new();
        error_response(&mut buf, Severity::Error, "42000", "m");
        for cut in 5..buf.len() {
            let _ = parse_error_fields(&buf[5..cut]);
        }
        assert_eq!(parse_parameter_status(b"a\0b"), None);
        assert_eq!(parse_parameter_status(b"a\0b\0"), Some(("a", "b")));
    }

    #[test]
    fn query_and_ready_encoding() {
        let mut buf = BytesMut::new();
        query(&mut buf, "SELECT 1");
        ready_for_query(&mut buf, b'T');
        assert_eq!(&buf[..], b"Q\0\0\0\x0dSELECT 1\0Z\0\0\0\x05T");
    }
}
