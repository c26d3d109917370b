//! A client's statement names and the server names they stand for (`pgsc_<client>_<n>`),
//! and the rewriting of the client's Parse, Bind, Describe and Close frames.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use crate::protocol::read_cstr;

/// One client's named statements.
pub struct ClientStatements {
    prefix: String,
    next: u64,
    /// Client name to the server name and the renamed Parse frame (to prepare it
    /// again elsewhere).
    names: HashMap<String, Statement>,
    /// Server name back to the client name.
    by_server: HashMap<Arc<str>, String>,
    /// Where rewritten frames are built.
    scratch: BytesMut,
}

#[derive(Clone)]
pub struct Statement {
    pub server_name: Arc<str>,
    pub parse: Bytes,
}

impl ClientStatements {
    pub fn new(client_id: u64) -> ClientStatements {
        ClientStatements {
            prefix: format!("pgsc_{client_id:x}_"),
            next: 0,
            names: HashMap::new(),
            by_server: HashMap::new(),
            scratch: BytesMut::new(),
        }
    }

    /// The statement a server name stands for, if it is this client's.
    pub fn by_server_name(&self, server_name: &str) -> Option<&Statement> {
        let name = self.by_server.get(server_name)?;
        self.names.get(name)
    }

    /// The frame to send instead of a client's Parse, Bind, Describe or Close
    /// (`tag` and `body`) that names a prepared statement; `None` to send it as it is.
    /// Built in a buffer kept for the purpose: a Bind per query allocates nothing.
    pub fn rewrite(&mut self, tag: u8, body: &[u8]) -> Option<&[u8]> {
        match tag {
            b'P' => {
                let statement = self.parse(body)?;
                self.scratch.clear();
                self.scratch.extend_from_slice(&statement);
            }
            b'B' => {
                let mut pos = 0;
                let portal = read_cstr(body, &mut pos)?;
                let name = read_cstr(body, &mut pos)?;
                let server_name = self.server_name(name)?;
                frame_into(
                    &mut self.scratch,
                    b'B',
                    &[portal, &server_name],
                    &body[pos..],
                );
            }
            b'D' | b'C' if body.first() == Some(&b'S') => {
                let mut pos = 1;
                let name = read_cstr(body, &mut pos)?;
                let server_name = self.server_name(name)?;
                if tag == b'C' {
                    self.forget(name);
                }
                let out = &mut self.scratch;
                out.clear();
                out.put_u8(tag);
                out.put_u32(0);
                out.put_u8(b'S');
                out.put_slice(server_name.as_bytes());
                out.put_u8(0);
                fix_length(out);
            }
            _ => return None,
        }
        Some(&self.scratch)
    }

    /// Gives the statement now named `stale` on servers a fresh server name (its plan
    /// went stale); returns the new name and its Parse frame.
    pub fn reprepare(&mut self, stale: &str) -> Option<Statement> {
        let name = self.by_server.get(stale)?.clone();
        let old = self.names.get(&name)?;
        let mut pos = 5;
        read_cstr(&old.parse, &mut pos)?;
        let rest = old.parse.slice(pos..);
        let server_name: Arc<str> = format!("{}{}", self.prefix, self.next).into();
        self.next += 1;
        let parse = frame(b'P', &[&server_name], &rest).freeze();
        let statement = Statement { server_name, parse };
        self.forget(&name);
        self.by_server
            .insert(statement.server_name.clone(), name.clone());
        self.names.insert(name, statement.clone());
        Some(statement)
    }

    /// The start of a Bind streaming in (`header` of 5 bytes, `names`: the body bytes
    /// at hand): when it names a statement of this client, the new start (header with
    /// the length adjusted, portal, server name) and how many body bytes it replaces.
    pub fn rewrite_bind_start(&self, header: &[u8], names: &[u8]) -> Option<(BytesMut, usize)> {
        let mut pos = 0;
        let portal = read_cstr(names, &mut pos)?;
        let name = read_cstr(names, &mut pos)?;
        let server_name = self.server_name(name)?;
        let declared = u32::from_be_bytes(header.get(1..5)?.try_into().ok()?) as usize;
        let new_names = portal.len() + 1 + server_name.len() + 1;
        let mut out = BytesMut::with_capacity(5 + new_names);
        out.put_u8(b'B');
        out.put_u32((declared - pos + new_names) as u32);
        out.put_slice(portal.as_bytes());
        out.put_u8(0);
        out.put_slice(server_name.as_bytes());
        out.put_u8(0);
        Some((out, pos))
    }

    fn server_name(&self, name: &str) -> Option<Arc<str>> {
        if name.is_empty() {
            return None;
        }
        self.names.get(name).map(|s| s.server_name.clone())
    }

    /// A named Parse: a fresh server name (a name parsed again after its Close is a new
    /// statement), remembered with the renamed frame, which is returned.
    fn parse(&mut self, body: &[u8]) -> Option<Bytes> {
        let mut pos = 0;
        let name = read_cstr(body, &mut pos)?;
        if name.is_empty() {
            return None;
        }
        let server_name: Arc<str> = format!("{}{}", self.prefix, self.next).into();
        self.next += 1;
        let out = frame(b'P', &[&server_name], &body[pos..]).freeze();
        let statement = Statement {
            server_name,
            parse: out.clone(),
        };
        // A Parse of a name already in use replaces it (the earlier Parse may have
        // failed on its server; PostgreSQL would refuse a name that still exists).
        self.forget(name);
        self.by_server
            .insert(statement.server_name.clone(), name.to_string());
        self.names.insert(name.to_string(), statement);
        Some(out)
    }

    /// Forgets a client name; false when the client has no such protocol statement.
    pub fn forget_name(&mut self, name: &str) -> bool {
        let known = self.names.contains_key(name);
        self.forget(name);
        known
    }

    pub fn forget_all(&mut self) {
        self.names.clear();
        self.by_server.clear();
    }

    fn forget(&mut self, name: &str) {
        if let Some(old) = self.names.remove(name) {
            self.by_server.remove(&old.server_name);
        }
    }
}

/// A frame: `tag`, length, the C strings `names`, then `rest` as it was.
fn frame(tag: u8, names: &[&str], rest: &[u8]) -> BytesMut {
    let mut out = BytesMut::with_capacity(64 + rest.len());
    frame_into(&mut out, tag, names, rest);
    out
}

/// Like [`frame`], into `out` (emptied first).
fn frame_into(out: &mut BytesMut, tag: u8, names: &[&str], rest: &[u8]) {
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

fn fix_length(out: &mut BytesMut) {
    let len = (out.len() - 1) as u32;
    out[1..5].copy_from_slice(&len.to_be_bytes());
}

/// What a SQL `DEALLOCATE` deallocates.
#[derive(Debug, PartialEq, Eq)]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn body(frame: &[u8]) -> &[u8] {
        &frame[5..]
    }

    #[test]
    fn deallocate_statements() {
        use Deallocate::*;
        assert_eq!(deallocate_target("DEALLOCATE ALL"), Some(All));
        assert_eq!(
            deallocate_target("deallocate prepare q1;"),
            Some(Name("q1".into()))
        );
        assert_eq!(
            deallocate_target("DEALLOCATE \"Q1\""),
            Some(Name("Q1".into()))
        );
        assert_eq!(deallocate_target("DEALLOCATE Q1"), Some(Name("q1".into())));
        assert_eq!(deallocate_target("DEALLOCATE q1; SELECT 1"), None);
        assert_eq!(deallocate_target("SELECT 1"), None);
    }

    #[test]
    fn names_are_rewritten_everywhere_and_forgotten_at_close() {
        let mut s = ClientStatements::new(0x2a);
        let parse = s.rewrite(b'P', b"q1\0SELECT $1\0\0\x01\0\0\0\x17").unwrap();
        assert_eq!(parse, b"P\0\0\0\x1epgsc_2a_0\0SELECT $1\0\0\x01\0\0\0\x17");
        let bind = s.rewrite(b'B', b"\0q1\0\0\0\0\0\0\0").unwrap();
        assert_eq!(body(bind), b"\0pgsc_2a_0\0\0\0\0\0\0\0");
        assert_eq!(statement_used(b'B', body(bind)), Some("pgsc_2a_0"));
        let describe = s.rewrite(b'D', b"Sq1\0").unwrap();
        assert_eq!(describe, b"D\0\0\0\x0fSpgsc_2a_0\0");
        assert!(s.by_server_name("pgsc_2a_0").is_some());
        // Unnamed statements and portals pass as they are.
        assert!(s.rewrite(b'P', b"\0SELECT 1\0\0\0").is_none());
        assert!(s.rewrite(b'D', b"Pq1\0").is_none());
        let close = s.rewrite(b'C', b"Sq1\0").unwrap();
        assert_eq!(body(close), b"Spgsc_2a_0\0");
        assert!(s.rewrite(b'B', b"\0q1\0\0\0\0\0\0\0").is_none(), "closed");
        // Parsed again: a new server name.
        let again = s.rewrite(b'P', b"q1\0SELECT 2\0\0\0").unwrap();
        assert!(again.windows(9).any(|w| w == b"pgsc_2a_1"));
    }
}
