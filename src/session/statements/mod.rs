//! One client's statements, the one place a statement has an identity: client name →
//! [`Prepared`] (the name servers know it by, its Parse frame, its analysis, its stats
//! entry, parameter types and session effects), the portals bound from them, and the
//! simple-protocol texts seen lately ([`simple`]).
//!
//! In transaction mode named statements are renamed (`pgsc_<client>_<n>`) so they can be
//! prepared again on whichever server the client lands on; in session mode a statement
//! keeps its name. Either way the rename step resolves each Parse, Bind, Describe,
//! Close and Execute here once, and the later steps use what it found.

mod frames;
mod portals;
pub mod simple;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex, OnceLock};

use bytes::{Bytes, BytesMut};

use crate::protocol::read_cstr;
use crate::query::{Analyzer, FastMap, Opacity, QueryInfo, TextEffects};
use crate::stats::QueryStats;
pub use frames::{deallocate_target, statement_used, Deallocate};
pub use portals::Portal;

/// A prepared statement as this client parsed it.
pub struct Prepared {
    /// The name servers know it by ("" for the unnamed statement).
    pub server_name: Arc<str>,
    /// The Parse frame as servers get it (renamed); empty unless renamed, the only
    /// case where the proxy sends it again itself.
    pub parse: Bytes,
    /// The Parse body after the name: query text, NUL, parameter types.
    rest: Bytes,
    sql_len: usize,
    pub param_types: Box<[u32]>,
    /// Empty text: executing it runs nothing worth measuring.
    pub blank: bool,
    pub info: Arc<QueryInfo>,
    /// What its text does to the session (transaction mode; default otherwise).
    pub effects: TextEffects,
    /// Names it calls still unknown (narrowed at each Bind as verdicts come in).
    pub opacity: Mutex<Opacity>,
    /// Its statistics entry, found at its first execution.
    pub stats: OnceLock<Arc<QueryStats>>,
}

impl Prepared {
    pub fn sql(&self) -> &str {
        std::str::from_utf8(&self.rest[..self.sql_len]).unwrap_or_default()
    }
}

/// What a Parse needs besides its body.
pub struct Analysis<'a> {
    pub analyzer: &'a Analyzer,
    /// Transaction mode: read what texts do to their session.
    pub watch: bool,
}

/// Renaming of named statements (transaction mode).
struct Renamer {
    prefix: String,
    next: u64,
}

impl Renamer {
    fn fresh(&mut self) -> Arc<str> {
        let name = format!("{}{}", self.prefix, self.next);
        self.next += 1;
        name.into()
    }
}

/// The registry.
pub struct Statements {
    names: FastMap<Box<str>, Arc<Prepared>>,
    /// Server name back to the client name (renamed statements only).
    by_server: FastMap<Arc<str>, Box<str>>,
    renamer: Option<Renamer>,
    pub portals: portals::Portals,
    pub texts: simple::Texts,
    /// Where rewritten frames are built.
    scratch: BytesMut,
    /// A DEALLOCATE ALL went by: the next server met forgets its prepared statements.
    pub forget_on_next_server: bool,
}

impl Statements {
    /// `rename_for`: the client's id when its statements are renamed (transaction mode).
    pub fn new(rename_for: Option<u64>) -> Statements {
        Statements {
            names: FastMap::default(),
            by_server: FastMap::default(),
            renamer: rename_for.map(|id| Renamer {
                prefix: format!("pgsc_{id:x}_"),
                next: 0,
            }),
            portals: portals::Portals::default(),
            texts: simple::Texts::default(),
            scratch: BytesMut::new(),
            forget_on_next_server: false,
        }
    }

    pub fn renames(&self) -> bool {
        self.renamer.is_some()
    }

    /// The statement named `name` by the client.
    pub fn get(&self, name: &str) -> Option<&Arc<Prepared>> {
        self.names.get(name)
    }

    /// The statement a server name stands for, if it is this client's renamed one.
    pub fn by_server_name(&self, server_name: &str) -> Option<&Arc<Prepared>> {
        self.names.get(self.by_server.get(server_name)?)
    }

    /// A Parse: the statement it defines, and the frame to send instead when renamed.
    /// The unnamed statement parsed again with the same text (what most drivers do on
    /// every query) is the same statement: nothing is analyzed or allocated again.
    pub fn parse(&mut self, body: &[u8], a: &Analysis<'_>) -> Option<(Arc<Prepared>, bool)> {
        let mut pos = 0;
        let name = read_cstr(body, &mut pos)?;
        let rest = &body[pos..];
        if let Some(old) = self.names.get(name) {
            if name.is_empty() && old.rest[..] == *rest {
                return Some((old.clone(), false));
            }
        }
        let mut sql_pos = 0;
        let sql = read_cstr(rest, &mut sql_pos)?;
        let server_name = match (&mut self.renamer, name.is_empty()) {
            (Some(r), false) => r.fresh(),
            _ => Arc::from(name),
        };
        let renamed = self.renamer.is_some() && !name.is_empty();
        let parse = match renamed {
            true => frames::frame(b'P', &[&server_name], rest).freeze(),
            false => Bytes::new(),
        };
        let effects = a.watch.then(|| crate::query::text_effects(sql));
        let effects = effects.unwrap_or_default();
        let stmt = Arc::new(Prepared {
            server_name,
            parse,
            rest: Bytes::copy_from_slice(rest),
            sql_len: sql.len(),
            param_types: frames::param_types(&rest[sql_pos..]).collect(),
            blank: sql.trim().is_empty(),
            info: a.analyzer.analyze_text(sql),
            opacity: Mutex::new(effects.opacity.clone()),
            effects,
            stats: OnceLock::new(),
        });
        // A Parse of a name in use replaces it (the earlier Parse may have failed on its
        // server; PostgreSQL would refuse a name that still exists).
        self.forget(name);
        if renamed {
            self.by_server.insert(stmt.server_name.clone(), name.into());
        }
        self.names.insert(name.into(), stmt.clone());
        if renamed {
            self.scratch.clear();
            self.scratch.extend_from_slice(&stmt.parse);
        }
        Some((stmt, renamed))
    }

    /// The frame last built by a rewrite.
    pub fn rewritten(&self) -> &[u8] {
        &self.scratch
    }

    /// A whole Bind: its statement (the portal is remembered with it), and whether the
    /// frame was rewritten (renamed) into [`Self::rewritten`].
    pub fn bind(&mut self, body: &[u8], keep_values: bool) -> (Option<Arc<Prepared>>, bool) {
        let mut pos = 0;
        let (Some(portal), Some(name)) = (read_cstr(body, &mut pos), read_cstr(body, &mut pos))
        else {
            return (None, false);
        };
        let stmt = self.names.get(name).cloned();
        let values = &body[pos..];
        self.portals
            .bind(portal, stmt.as_ref(), values, keep_values, true);
        let Some(stmt) = stmt else {
            return (None, false);
        };
        if name.is_empty() || self.renamer.is_none() {
            return (Some(stmt), false);
        }
        frames::frame_into(
            &mut self.scratch,
            b'B',
            &[portal, &stmt.server_name],
            values,
        );
        (Some(stmt), true)
    }

    /// Describe or Close of a statement (`tag` and body): its statement, and whether the
    /// frame was renamed into [`Self::rewritten`]. A Close forgets the name (and a
    /// portal's Close the portal).
    pub fn describe_or_close(&mut self, tag: u8, body: &[u8]) -> (Option<Arc<Prepared>>, bool) {
        let mut pos = 1;
        let Some(name) = read_cstr(body, &mut pos) else {
            return (None, false);
        };
        if body.first() != Some(&b'S') {
            if tag == b'C' {
                self.portals.close(name);
            }
            return (None, false);
        }
        let Some(stmt) = self.names.get(name).cloned() else {
            return (None, false);
        };
        if tag == b'C' {
            self.forget(name);
        }
        if name.is_empty() || self.renamer.is_none() {
            return (Some(stmt), false);
        }
        frames::name_frame_into(&mut self.scratch, tag, &stmt.server_name);
        (Some(stmt), true)
    }

    /// The start of a Bind streaming in (`header` of 5 bytes, `names`: the body bytes
    /// at hand): when it names a renamed statement, the new start (header with the
    /// length adjusted, portal, server name) and how many body bytes it replaces.
    pub fn rewrite_bind_start(&mut self, header: &[u8], names: &[u8]) -> Option<(BytesMut, usize)> {
        let mut pos = 0;
        let portal = read_cstr(names, &mut pos)?;
        let name = read_cstr(names, &mut pos)?;
        let stmt = self.names.get(name).cloned();
        self.portals.bind(portal, stmt.as_ref(), &[], false, false);
        if name.is_empty() || self.renamer.is_none() {
            return None;
        }
        frames::bind_start(header, portal, &stmt?.server_name, pos)
    }

    /// Gives the statement now named `stale` on servers a fresh server name (its plan
    /// went stale); returns it with its new Parse frame.
    pub fn reprepare(&mut self, stale: &str) -> Option<Arc<Prepared>> {
        let name = self.by_server.get(stale)?.clone();
        let old = self.names.get(&name)?.clone();
        let server_name = self.renamer.as_mut()?.fresh();
        let parse = frames::frame(b'P', &[&server_name], &old.rest).freeze();
        let fresh = Arc::new(Prepared {
            server_name,
            parse,
            rest: old.rest.clone(),
            sql_len: old.sql_len,
            param_types: old.param_types.clone(),
            blank: old.blank,
            info: old.info.clone(),
            effects: old.effects.clone(),
            opacity: Mutex::new(old.effects.opacity.clone()),
            stats: OnceLock::new(),
        });
        self.forget(&name);
        self.by_server
            .insert(fresh.server_name.clone(), name.clone());
        self.names.insert(name, fresh.clone());
        Some(fresh)
    }

    /// Forgets a client name; false when the client has no such protocol statement.
    pub fn forget_name(&mut self, name: &str) -> bool {
        let known = self.names.contains_key(name);
        self.forget(name);
        known
    }

    /// DEALLOCATE ALL: every named statement is gone, here and (as they are met) on
    /// the servers.
    pub fn forget_all(&mut self) {
        self.names.retain(|name, _| name.is_empty());
        self.by_server.clear();
        self.forget_on_next_server = self.renamer.is_some();
    }

    fn forget(&mut self, name: &str) {
        if let Some(old) = self.names.remove(name) {
            if self.renamer.is_some() {
                self.by_server.remove(&old.server_name);
            }
        }
    }
}
