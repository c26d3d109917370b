//! A client's session settings from its StartupMessage (application_name, client_encoding,
//! DateStyle, `options=-c …`, …) and how to bring a pooled server in line with them.
//!
//! In transaction mode a client meets many servers. Before its first statement on a
//! server, settings that differ are applied with `set_config`, and settings a previous
//! client applied that this one did not ask for are `RESET`, so one client's startup
//! parameters never leak into another's.

use std::fmt::Write;

use crate::pool::ServerConn;

/// Startup keys that are not settings.
const NOT_SETTINGS: &[&str] = &["user", "database", "replication", "options"];

pub use crate::pool::server::is_transferable;

/// Desired settings, keyed by lower-case name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientParams {
    settings: Vec<(String, String)>,
    /// Names in `settings` that were read back from a server after the client changed
    /// its session (SET and the like), as opposed to asked for at startup.
    session_names: Vec<String>,
    /// Hash of `settings`, kept current by `set`.
    signature: u64,
}

impl ClientParams {
    /// Builds the settings from startup parameters; returns the `_pq_.` protocol options
    /// the proxy does not support, for NegotiateProtocolVersion.
    pub fn from_startup(params: &[(String, String)]) -> (ClientParams, Vec<String>) {
        let mut out = ClientParams::default();
        let mut unsupported = Vec::new();
        for (key, value) in params {
            if key.starts_with("_pq_.") {
                unsupported.push(key.clone());
            } else if key == "options" {
                for (k, v) in parse_options(value) {
                    out.set(&k, &v);
                }
            } else if !NOT_SETTINGS.contains(&key.as_str()) {
                out.set(key, value);
            }
        }
        out.signature = out.compute_signature();
        (out, unsupported)
    }

    /// Sets (or replaces) one setting.
    pub fn set(&mut self, name: &str, value: &str) {
        let lower = name.to_ascii_lowercase();
        match self.settings.iter_mut().find(|(k, _)| *k == lower) {
            Some(entry) => entry.1 = value.to_string(),
            None => self.settings.push((lower, value.to_string())),
        }
        self.signature = self.compute_signature();
    }

    /// Identifies these settings: equal signatures mean equal settings (order aside,
    /// a hash collision being the only exception, at 2^-64).
    pub fn signature(&self) -> u64 {
        self.signature
    }

    fn compute_signature(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut sorted: Vec<_> = self.settings.iter().collect();
        sorted.sort();
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        sorted.hash(&mut hasher);
        hasher.finish()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_lower(&name.to_ascii_lowercase())
    }

    /// Like `get` for a name already in lower case (no allocation).
    fn get_lower(&self, lower: &str) -> Option<&str> {
        self.settings
            .iter()
            .find(|(k, _)| k == lower)
            .map(|(_, v)| v.as_str())
    }

    /// True when `server` differs from these settings. Allocation-free: this runs on
    /// every checkout.
    pub fn needs_sync(&self, server: &ServerConn) -> bool {
        self.settings
            .iter()
            .any(|(k, v)| server.setting(k) != Some(v.as_str()))
            || server
                .applied
                .keys()
                .chain(server.drifted.iter())
                .any(|k| self.get_lower(k).is_none())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The SQL that makes `server` match these settings, or `None` when it already does.
    pub fn sync_sql(&self, server: &ServerConn) -> Option<String> {
        if !self.needs_sync(server) {
            return None;
        }
        let mut sql = String::new();
        for name in server.applied.keys().chain(server.drifted.iter()) {
            if self.get_lower(name).is_none() {
                let _ = write!(sql, "RESET {};", quote_ident(name));
            }
        }
        let mut calls = Vec::new();
        for (name, value) in &self.settings {
            if server.setting(name) != Some(value.as_str()) {
                calls.push(format!(
                    "pg_catalog.set_config({}, {}, false)",
                    quote_literal(name),
                    quote_literal(value)
                ));
            }
        }
        if !calls.is_empty() {
            let _ = write!(sql, "SELECT {};", calls.join(", "));
        }
        (!sql.is_empty()).then_some(sql)
    }

    /// Adopts the session-level settings read back from `server` after the client may
    /// have changed some (SET, RESET, `set_config`, DISCARD): `current` is every
    /// `(name, value)` the session set. Reported parameters are left to ParameterStatus.
    /// Records on the server what it now has, so the next client gets its own values.
    pub fn adopt_session(&mut self, server: &mut ServerConn, current: &[(String, String)]) {
        let current: Vec<(String, &str)> = (current.iter())
            .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
            .filter(|(k, _)| !server.reported.contains_key(k.as_str()))
            .collect();
        for name in std::mem::take(&mut self.session_names) {
            if !current.iter().any(|(k, _)| *k == name) {
                self.settings.retain(|(k, _)| *k != name);
            }
        }
        server.applied.clear();
        for (name, value) in current {
            server.applied.insert(name.clone(), value.to_string());
            match self.settings.iter_mut().find(|(k, _)| *k == name) {
                Some(entry) => entry.1 = value.to_string(),
                None => self.settings.push((name.clone(), value.to_string())),
            }
            self.session_names.push(name);
        }
        self.signature = self.compute_signature();
        server.verified_for = Some(self.signature);
    }

    /// After a sync: records on the server what it now has, and adopts the server's
    /// spelling of reported values (`utf8` becomes `UTF8`) so the next comparison matches.
    pub fn after_sync(&mut self, server: &mut ServerConn) {
        server.applied.clear();
        for (name, value) in &mut self.settings {
            match server.reported.get(name.as_str()) {
                Some((_, reported)) => *value = reported.clone(),
                None => {
                    server.applied.insert(name.clone(), value.clone());
                }
            }
        }
        self.signature = self.compute_signature();
    }
}

/// Splits a libpq `options` string into `-c name=value` / `--name=value` pairs.
/// Backslash escapes the next character (libpq's way to put a space in a value).
pub fn parse_options(options: &str) -> Vec<(String, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    let mut pairs = Vec::new();
    let mut iter = words.into_iter();
    while let Some(w) = iter.next() {
        let setting = if w == "-c" {
            iter.next()
        } else {
            w.strip_prefix("--")
                .or_else(|| w.strip_prefix("-c"))
                .map(str::to_string)
        };
        if let Some((k, v)) = setting.as_deref().and_then(|s| s.split_once('=')) {
            pairs.push((k.replace('-', "_"), v.to_string()));
        }
    }
    pairs
}

/// A string literal safe under either setting of standard_conforming_strings.
pub fn quote_literal(s: &str) -> String {
    let body = s.replace('\'', "''");
    if body.contains('\\') {
        format!("E'{}'", body.replace('\\', "\\\\"))
    } else {
        format!("'{body}'")
    }
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn startup_params_become_settings() {
        let (p, unsupported) = ClientParams::from_startup(&kv(&[
            ("user", "u"),
            ("database", "d"),
            ("application_name", "app"),
            ("DateStyle", "ISO"),
            ("options", "-c statement_timeout=5s --search-path=a\\,\\ b"),
            ("_pq_.compression", "on"),
        ]));
        assert_eq!(p.get("application_name"), Some("app"));
        assert_eq!(p.get("datestyle"), Some("ISO"));
        assert_eq!(p.get("statement_timeout"), Some("5s"));
        assert_eq!(p.get("search_path"), Some("a, b"));
        assert_eq!(p.get("user"), None);
        assert_eq!(unsupported, vec!["_pq_.compression".to_string()]);
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_literal("it's"), "'it''s'");
        assert_eq!(quote_literal("a\\b"), "E'a\\\\b'");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }
}
