//! One client session's view of the cache: who it is (database, user, the startup
//! settings that go into the key), whether it must bypass for good (it changed a
//! setting or its role, or made temporary objects), the miss being filled, and the
//! writes to invalidate before its ReadyForQuery. The pipeline steps that use it are in
//! `session/pipeline/cache.rs`.

use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;

use super::reason::{Bypass, Source};
use super::{Cache, Ticket};
use crate::query::{Command, QueryInfo};

/// What one statement does, as far as the cache is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Reads only (or changes nothing the cache depends on).
    Read,
    /// Changes the session's settings, role or temporary objects: bypass from now on.
    Session,
    /// DML on these tables (as written).
    Tables(Vec<String>),
    /// A write the text does not show fully (CALL, DO, EXECUTE, unparsed, several
    /// statements): everything in the database.
    Database,
    /// DDL, GRANT, REVOKE, TRUNCATE: everything in the database, and the analyses.
    Ddl,
}

/// Utility statements that write nothing.
const QUIET: [&str; 10] = [
    "SHOW",
    "LISTEN",
    "UNLISTEN",
    "DEALLOCATE",
    "CHECKPOINT",
    "VACUUM",
    "ANALYZE",
    "FETCH",
    "CLOSE",
    "MOVE",
];

/// Classifies one analyzed statement.
pub fn effect(info: &QueryInfo) -> Effect {
    let first = first_word(&info.normalized);
    if !info.parsed {
        return Effect::Database;
    }
    let lower = info.normalized.to_ascii_lowercase();
    match info.command {
        Command::Select if !info.tables_written.is_empty() => Effect::Ddl,
        Command::Select if lower.contains("set_config") => Effect::Session,
        Command::Select | Command::Transaction => Effect::Read,
        Command::Insert | Command::Update | Command::Delete => {
            Effect::Tables(info.tables_written.clone())
        }
        Command::Copy if info.tables_written.is_empty() => Effect::Read,
        Command::Copy => Effect::Tables(info.tables_written.clone()),
        Command::Ddl if lower.contains("temp") => Effect::Session,
        Command::Ddl => Effect::Ddl,
        Command::Utility if matches!(first.as_str(), "SET" | "RESET" | "DISCARD") => {
            Effect::Session
        }
        Command::Utility if QUIET.contains(&first.as_str()) => Effect::Read,
        Command::Utility => Effect::Database,
    }
}

fn first_word(text: &str) -> String {
    let word: String = text
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    word.to_ascii_uppercase()
}

/// Writes seen in the current transaction, applied at the ReadyForQuery that ends it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub enum Writes {
    #[default]
    None,
    Tables(Vec<String>),
    Database,
    Ddl,
}

impl Writes {
    pub fn add(&mut self, effect: &Effect) {
        let next = match (std::mem::take(self), effect) {
            (Writes::Ddl, _) | (_, Effect::Ddl) => Writes::Ddl,
            (Writes::Database, _) | (_, Effect::Database) => Writes::Database,
            (Writes::Tables(mut t), Effect::Tables(more)) => {
                t.extend(more.iter().cloned());
                Writes::Tables(t)
            }
            (Writes::None, Effect::Tables(t)) => Writes::Tables(t.clone()),
            (w, _) => w,
        };
        *self = next;
    }
}

/// A miss whose response is being collected.
pub struct Fill {
    pub ticket: Ticket,
    pub bytes: BytesMut,
    pub rows: u64,
    pub started: Instant,
    /// Something made it unstorable (an error, a notice, too big).
    pub spoiled: bool,
    /// CommandComplete arrived and its row count matched the rows seen.
    pub complete: bool,
}

/// The cache state of one session.
pub struct SessionCache {
    pub cache: Arc<Cache>,
    pub database: String,
    pub user: String,
    /// The startup `search_path`, or empty for the role's default.
    pub search_path: String,
    /// Hash of every startup setting (stricter than the output settings alone).
    pub settings: [u8; 32],
    /// Set once the session did something the key cannot follow.
    pub bypass: Option<Bypass>,
    pub fill: Option<Fill>,
    pub writes: Writes,
}

impl SessionCache {
    /// `None` when the cache is off.
    pub fn new(
        cache: &Arc<Cache>,
        database: &str,
        user: &str,
        settings: &[(&str, &str)],
    ) -> Option<Box<SessionCache>> {
        if !cache.enabled() {
            return None;
        }
        let search_path = (settings.iter())
            .find(|(k, _)| k.eq_ignore_ascii_case("search_path"))
            .map_or("", |(_, v)| v);
        let mut hash = sha2::Sha256::default();
        let mut sorted: Vec<_> = settings.to_vec();
        sorted.sort();
        for (k, v) in sorted {
            use sha2::Digest;
            hash.update((k.len() as u32).to_be_bytes());
            hash.update(k.as_bytes());
            hash.update((v.len() as u32).to_be_bytes());
            hash.update(v.as_bytes());
        }
        use sha2::Digest;
        Some(Box::new(SessionCache {
            cache: cache.clone(),
            database: database.to_owned(),
            user: user.to_owned(),
            search_path: search_path.to_owned(),
            settings: hash.finalize().into(),
            bypass: None,
            fill: None,
            writes: Writes::None,
        }))
    }

    /// Notes a statement the session sends.
    pub fn note(&mut self, effect: &Effect) {
        match effect {
            Effect::Session => self.bypass = Some(Bypass::SessionState),
            Effect::Read => {}
            other => self.writes.add(other),
        }
    }

    /// Applies the writes of a transaction that ended (ReadyForQuery `I`), before the
    /// client sees that ReadyForQuery.
    pub fn apply_writes(&mut self) {
        match std::mem::take(&mut self.writes) {
            Writes::None => {}
            Writes::Tables(names) => self.cache.invalidate_names(&self.database, &names),
            Writes::Database => self
                .cache
                .invalidate_database(&self.database, Source::Proxy),
            Writes::Ddl => self.cache.invalidate_database(&self.database, Source::Ddl),
        }
    }
}

/// True when a `pgsidecar.cache` setting value turns the cache off for the session.
pub fn session_opts_out(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "off" | "false" | "0" | "no"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(command: Command, normalized: &str, written: &[&str]) -> QueryInfo {
        QueryInfo {
            fingerprint: 1,
            normalized: normalized.into(),
            command,
            tables_read: vec![],
            tables_written: written.iter().map(|s| s.to_string()).collect(),
            parsed: true,
        }
    }

    #[test]
    fn statements_are_classified_fail_closed() {
        assert_eq!(
            effect(&info(Command::Select, "SELECT * FROM t", &[])),
            Effect::Read
        );
        assert_eq!(
            effect(&info(Command::Update, "UPDATE t SET a = $1", &["t"])),
            Effect::Tables(vec!["t".into()])
        );
        assert_eq!(
            effect(&info(Command::Ddl, "TRUNCATE t", &["t"])),
            Effect::Ddl
        );
        assert_eq!(
            effect(&info(Command::Ddl, "GRANT SELECT ON t TO x", &[])),
            Effect::Ddl
        );
        assert_eq!(
            effect(&info(Command::Ddl, "CREATE TEMP TABLE x (a int)", &["x"])),
            Effect::Session
        );
        assert_eq!(
            effect(&info(Command::Utility, "SET ROLE x", &[])),
            Effect::Session
        );
        assert_eq!(
            effect(&info(Command::Utility, "CALL p()", &[])),
            Effect::Database
        );
        assert_eq!(
            effect(&info(Command::Utility, "DO $1", &[])),
            Effect::Database
        );
        assert_eq!(
            effect(&info(Command::Utility, "SHOW work_mem", &[])),
            Effect::Read
        );
        assert_eq!(
            effect(&info(Command::Select, "SELECT set_config($1, $2, $3)", &[])),
            Effect::Session
        );
        let mut unparsed = info(Command::Select, "SELEC", &[]);
        unparsed.parsed = false;
        assert_eq!(effect(&unparsed), Effect::Database);
    }

    #[test]
    fn writes_accumulate_to_the_broadest() {
        let mut w = Writes::None;
        w.add(&Effect::Tables(vec!["a".into()]));
        w.add(&Effect::Tables(vec!["b".into()]));
        assert_eq!(w, Writes::Tables(vec!["a".into(), "b".into()]));
        w.add(&Effect::Database);
        w.add(&Effect::Tables(vec!["c".into()]));
        assert_eq!(w, Writes::Database);
        w.add(&Effect::Ddl);
        assert_eq!(w, Writes::Ddl);
    }
}
