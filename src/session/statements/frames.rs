//! Building the renamed frames, and reading the few names and targets the registry
//! needs from client frames.

use bytes::{BufMut, BytesMut};

use crate::protocol::read_cstr;

/// A frame: `tag`, length, the C strings `names`, then `rest` as it was.
pub fn frame(tag: u8, names: &[&str], rest: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(64 + rest.len());
    frame_into(&mut out, tag, names, rest);
    out
}

/// Like [`frame`], into `out` (emptied first; a warm buffer allocates nothing).
pub fn frame_into(out: &mut BytesMut, tag: u8, names: &[&str], rest: &[u8]) {
    out.clear();
    out.put_u8(tag);
    out.put_u32(0);
    for name in names {
        out.put_slice(name.as_bytes());
        out.put_u8(0);
    }
    out.put_slice(rest);
    fix_length(out);
}

/// A Describe or Close of the statement `server_name`, into `out`.
pub fn name_frame_into(out: &mut BytesMut, tag: u8, server_name: &str) {
    out.clear();
    out.put_u8(tag);
    out.put_u32(0);
    out.put_u8(b'S');
    out.put_slice(server_name.as_bytes());
    out.put_u8(0);
    fix_length(out);
}

/// The new start of a streamed Bind (see `Statements::rewrite_bind_start`).
pub fn bind_start(
    header: &[u8],
    portal: &str,
    server_name: &str,
    replaced: usize,
) -> Option<(BytesMut, usize)> {
    let declared = u32::from_be_bytes(header.get(1..5)?.try_into().ok()?) as usize;
    let new_names = portal.len() + 1 + server_name.len() + 1;
    let mut out = BytesMut::with_capacity(5 + new_names);
    out.put_u8(b'B');
    out.put_u32((declared.saturating_sub(replaced) + new_names) as u32);
    out.put_slice(portal.as_bytes());
    out.put_u8(0);
    out.put_slice(server_name.as_bytes());
    out.put_u8(0);
    Some((out, replaced))
}

fn fix_length(out: &mut BytesMut) {
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
}

/// The parameter type OIDs at the end of a Parse body.
pub fn param_types(rest: &[u8]) -> impl Iterator<Item = u32> + '_ {
    let n = rest
        .get(..2)
        .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]));
    rest.get(2..)
        .unwrap_or_default()
        .chunks_exact(4)
        .take(n as usize)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
}

/// What a SQL `DEALLOCATE` deallocates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deallocate {
    All,
    Name(String),
}

/// The target of a Query that is one `DEALLOCATE [PREPARE] {name | ALL}` statement.
pub fn deallocate_target(sql: &str) -> Option<Deallocate> {
    let sql = sql.trim().trim_end_matches(';').trim_end();
    let mut words = sql.split_ascii_whitespace();
    if !words.next()?.eq_ignore_ascii_case("deallocate") {
        return None;
    }
    let mut target = words.next()?;
    if target.eq_ignore_ascii_case("prepare") {
        target = words.next()?;
    }
    if words.next().is_some() {
        return None;
    }
    if target.eq_ignore_ascii_case("all") {
        return Some(Deallocate::All);
    }
    let name = match target.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
        Some(quoted) => quoted.replace("\"\"", "\""),
        None => target.to_ascii_lowercase(),
    };
    Some(Deallocate::Name(name))
}

/// The statement a Bind or Describe (whole frame body) uses, when it names one.
pub fn statement_used(tag: u8, body: &[u8]) -> Option<&str> {
    let mut pos = 0;
    match tag {
        b'B' => {
            read_cstr(body, &mut pos)?;
            read_cstr(body, &mut pos).filter(|n| !n.is_empty())
        }
        b'D' if body.first() == Some(&b'S') => {
            pos = 1;
            read_cstr(body, &mut pos).filter(|n| !n.is_empty())
        }
        _ => None,
    }
}
