//! The PostgreSQL wire protocol as far as a proxy needs it: framing, startup packets,
//! and the few messages the proxy builds or reads itself.
//!
//! Frontend and backend tags overlap (`C` is Close from a client, CommandComplete from a
//! server; `D` is Describe or DataRow), so code always knows which direction it reads.

pub mod frame;
pub mod messages;
pub mod startup;
pub mod tags;

pub use frame::{Direction, FrameScanner, Scan};

/// A client broke the protocol. Each one ends that client's connection with SQLSTATE 08P01.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("invalid frontend message type {}", describe_tag(*.0))]
    UnknownMessage(u8),
    #[error("invalid message length {len} for message type {}", describe_tag(*tag))]
    BadLength { tag: u8, len: usize },
    #[error("message type {} of {len} bytes exceeds max_message_size {max}", describe_tag(*tag))]
    TooLarge { tag: u8, len: usize, max: usize },
    #[error("invalid startup packet length {0}")]
    StartupLength(usize),
    #[error("unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0")]
    UnsupportedVersion { major: u16, minor: u16 },
    #[error("malformed {0} message")]
    Malformed(&'static str),
    #[error("unexpected message type {tag} during {phase}", tag = describe_tag(*.0), phase = .1)]
    Unexpected(u8, &'static str),
}

fn describe_tag(tag: u8) -> String {
    if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        format!("0x{tag:02x}")
    }
}

/// Reads a NUL-terminated string starting at `*pos`, advancing past the NUL.
/// `None` when there is no NUL or the bytes are not UTF-8.
pub fn read_cstr<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a str> {
    let rest = buf.get(*pos..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    let s = std::str::from_utf8(&rest[..end]).ok()?;
    *pos += end + 1;
    Some(s)
}

/// Reads a big-endian i32 at `*pos`, advancing past it.
pub fn read_i32(buf: &[u8], pos: &mut usize) -> Option<i32> {
    let bytes: [u8; 4] = buf.get(*pos..*pos + 4)?.try_into().ok()?;
    *pos += 4;
    Some(i32::from_be_bytes(bytes))
}
