//! Packets a client sends before the regular protocol starts: SSLRequest, GSSENCRequest,
//! CancelRequest and StartupMessage, plus the password-family messages of authentication.
//!
//! These have no tag byte, only a length and a code, and are parsed by hand so that no
//! byte sequence can panic the proxy.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::{read_cstr, read_i32, ProtocolError};

/// PostgreSQL's own limit on a startup packet (`MAX_STARTUP_PACKET_LENGTH`).
pub const MAX_STARTUP_PACKET: usize = 10_000;

const SSL_REQUEST: i32 = 80_877_103;
const GSSENC_REQUEST: i32 = 80_877_104;
const CANCEL_REQUEST: i32 = 80_877_102;

/// What a client opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupPacket {
    SslRequest,
    GssEncRequest,
    Cancel { pid: i32, secret: i32 },
    Startup(StartupMessage),
}

/// A StartupMessage: the protocol version and every parameter, in the client's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartupMessage {
    pub major: u16,
    pub minor: u16,
    pub params: Vec<(String, String)>,
}

impl StartupMessage {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one length-prefixed startup-phase packet. `Ok(None)` is a clean EOF before any
/// byte (a port probe), which is not worth an error.
pub async fn read_packet<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<StartupPacket>, StartupReadError> {
    let mut len_buf = [0u8; 4];
    match reader.read(&mut len_buf[..1]).await? {
        0 => return Ok(None),
        _ => reader.read_exact(&mut len_buf[1..]).await?,
    };
    let len = u32::from_be_bytes(len_buf) as usize;
    if !(8..=MAX_STARTUP_PACKET).contains(&len) {
        return Err(ProtocolError::StartupLength(len).into());
    }
    let mut body = vec![0u8; len - 4];
    reader.read_exact(&mut body).await?;
    Ok(Some(parse_packet(&body)?))
}

/// Failure reading a startup packet: the socket, or the bytes.
#[derive(Debug, thiserror::Error)]
pub enum StartupReadError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
}

/// Parses a packet body (after the length word).
pub fn parse_packet(body: &[u8]) -> Result<StartupPacket, ProtocolError> {
    let mut pos = 0;
    let code = read_i32(body, &mut pos).ok_or(ProtocolError::Malformed("startup"))?;
    match code {
        SSL_REQUEST => Ok(StartupPacket::SslRequest),
        GSSENC_REQUEST => Ok(StartupPacket::GssEncRequest),
        CANCEL_REQUEST => {
            let pid = read_i32(body, &mut pos).ok_or(ProtocolError::Malformed("cancel"))?;
            let secret = read_i32(body, &mut pos).ok_or(ProtocolError::Malformed("cancel"))?;
            Ok(StartupPacket::Cancel { pid, secret })
        }
        version => {
            let major = (version >> 16) as u16;
            let minor = (version & 0xffff) as u16;
            if major != 3 {
                return Err(ProtocolError::UnsupportedVersion { major, minor });
            }
            let params = parse_params(&body[pos..])?;
            Ok(StartupPacket::Startup(StartupMessage {
                major,
                minor,
                params,
            }))
        }
    }
}

fn parse_params(buf: &[u8]) -> Result<Vec<(String, String)>, ProtocolError> {
    let malformed = ProtocolError::Malformed("startup");
    let mut params = Vec::new();
    let mut pos = 0;
    loop {
        let key = read_cstr(buf, &mut pos).ok_or(malformed.clone())?;
        if key.is_empty() {
            return Ok(params);
        }
        let value = read_cstr(buf, &mut pos).ok_or(malformed.clone())?;
        params.push((key.to_string(), value.to_string()));
    }
}

/// Body of a SASLInitialResponse: mechanism name and the client-first-message.
pub fn parse_sasl_initial(body: &[u8]) -> Result<(&str, &[u8]), ProtocolError> {
    let malformed = ProtocolError::Malformed("SASLInitialResponse");
    let mut pos = 0;
    let mechanism = read_cstr(body, &mut pos).ok_or(malformed.clone())?;
    let len = read_i32(body, &mut pos).ok_or(malformed.clone())?;
    let data = match usize::try_from(len) {
        Ok(n) => body.get(pos..pos + n).ok_or(malformed)?,
        Err(_) => &[],
    };
    Ok((mechanism, data))
}

/// Body of a PasswordMessage: the NUL-terminated password (or md5 response).
pub fn parse_password(body: &[u8]) -> Result<&[u8], ProtocolError> {
    match body.iter().position(|&b| b == 0) {
        Some(end) => Ok(&body[..end]),
        None => Err(ProtocolError::Malformed("PasswordMessage")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn startup_body(version: i32, params: &[(&str, &str)]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        for (k, v) in params {
            b.extend_from_slice(k.as_bytes());
            b.push(0);
            b.extend_from_slice(v.as_bytes());
            b.push(0);
        }
        b.push(0);
        b
    }

    #[test]
    fn parses_each_kind() {
        assert_eq!(
            parse_packet(&SSL_REQUEST.to_be_bytes()).unwrap(),
            StartupPacket::SslRequest
        );
        let mut cancel = CANCEL_REQUEST.to_be_bytes().to_vec();
        cancel.extend(7i32.to_be_bytes());
        cancel.extend((-9i32).to_be_bytes());
        assert_eq!(
            parse_packet(&cancel).unwrap(),
            StartupPacket::Cancel { pid: 7, secret: -9 }
        );
        let body = startup_body(196_608, &[("user", "app"), ("database", "db")]);
        let StartupPacket::Startup(m) = parse_packet(&body).unwrap() else {
            panic!("not a startup message")
        };
        assert_eq!((m.major, m.minor), (3, 0));
        assert_eq!(m.get("user"), Some("app"));
    }

    #[test]
    fn rejects_malformed() {
        assert!(parse_packet(&[0, 3]).is_err());
        assert!(matches!(
            parse_packet(&startup_body(2 << 16, &[])),
            Err(ProtocolError::UnsupportedVersion { major: 2, .. })
        ));
        let mut body = startup_body(196_608, &[("user", "app")]);
        body.truncate(body.len() - 3);
        assert!(parse_packet(&body).is_err());
        assert!(parse_sasl_initial(b"SCRAM-SHA-256\0\0\0\0\x09abc").is_err());
        assert_eq!(
            parse_sasl_initial(b"SCRAM-SHA-256\0\0\0\0\x03abc").unwrap(),
            ("SCRAM-SHA-256", &b"abc"[..])
        );
        assert!(parse_password(b"nonul").is_err());
    }
}
