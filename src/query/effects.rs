//! What a statement does to its session beyond its transaction, for transaction pooling:
//! settings it may change (SET, RESET, DISCARD, `set_config`) and state that cannot move
//! to another server (LISTEN, session advisory locks, temporary objects, cursors WITH
//! HOLD), which pins the client to its server.
//!
//! Runs on every Query and Parse in transaction mode, so the common case is a few byte
//! checks: the full tokenizer runs only when the first word, a `_` function name or a
//! second statement makes an effect possible.

use super::lexer::{Lexer, TokenKind};

/// Why a client must keep its server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinReason {
    Listen,
    AdvisoryLock,
    TempTable,
    CursorWithHold,
    /// SQL-level PREPARE: its EXECUTEs must find it on the same server.
    SqlPrepare,
}

/// Reasons a client can be pinned to its server, in the order of
/// `Shared::pinned_clients` (the `reason` label of `pgsidecar_pinned_clients_total`).
/// `copy` stays 0: a COPY cannot outlive its transaction in the protocol, so it never pins.
pub const PIN_REASONS: [&str; 6] = [
    "listen",
    "advisory_lock",
    "temp_table",
    "cursor_with_hold",
    "sql_prepare",
    "copy",
];

impl PinReason {
    /// The `reason` label in `pgsidecar_pinned_clients_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            PinReason::Listen => "listen",
            PinReason::AdvisoryLock => "advisory_lock",
            PinReason::TempTable => "temp_table",
            PinReason::CursorWithHold => "cursor_with_hold",
            PinReason::SqlPrepare => "sql_prepare",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionEffects {
    /// A session setting may have changed (re-read it before the server goes back).
    pub settings: bool,
    pub pin: Option<PinReason>,
}

/// Session-level advisory lock functions (the `_xact_` ones end with the transaction).
const SESSION_LOCKS: [&str; 4] = [
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
];

/// First words after which a statement may have a session effect.
const LEADING: [&str; 7] = [
    "set", "reset", "discard", "listen", "declare", "create", "prepare",
];

pub fn session_effects(sql: &str) -> SessionEffects {
    session_effects_after(sql, super::opaque::first_word(sql))
}

/// Everything a statement's text says about its session, with its first word lexed
/// once for all three questions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextEffects {
    pub session: SessionEffects,
    /// DDL that may change what a function name does (the pool's verdicts are stale).
    pub changes_functions: bool,
    /// DO, CALL, EXECUTE or a built-in that runs SQL (`opaque`), and every name called
    /// (`unknown`): which of them are built-ins is asked of the pool's verdicts at each
    /// execution, since verdicts change while a text is kept.
    pub opacity: super::Opacity,
}

impl TextEffects {
    /// True when the text does anything to its session worth a look at each execution.
    pub fn any(&self) -> bool {
        self.session.settings
            || self.session.pin.is_some()
            || self.changes_functions
            || self.opacity.any()
    }
}

/// Session effects, function DDL and opacity of `sql` in one go.
pub fn text_effects(sql: &str) -> TextEffects {
    static NOTHING_KNOWN: std::sync::LazyLock<super::KnownFunctions> =
        std::sync::LazyLock::new(Default::default);
    let first = super::opaque::first_word(sql);
    let mut opacity = super::Opacity::default();
    super::opaque::opacity_after(sql, first, &NOTHING_KNOWN, &mut opacity);
    TextEffects {
        session: session_effects_after(sql, first),
        changes_functions: super::opaque::changes_functions_after(sql, first),
        opacity,
    }
}

/// [`session_effects`] with the first word already lexed.
fn session_effects_after(sql: &str, first: Option<&str>) -> SessionEffects {
    let bytes = sql.as_bytes();
    let leading = first.is_some_and(|w| LEADING.iter().any(|l| w.eq_ignore_ascii_case(l)));
    if leading || has_session_call(bytes) || has_second_statement(bytes) {
        precise(sql)
    } else {
        SessionEffects::default()
    }
}

/// `set_config` or `…advisory_lock…` anywhere, found from the `_` in the name.
fn has_session_call(bytes: &[u8]) -> bool {
    let around = |i: usize, before: usize, word: &[u8]| {
        i.checked_sub(before)
            .and_then(|s| bytes.get(s..s + word.len()))
            .is_some_and(|w| w.eq_ignore_ascii_case(word))
    };
    (bytes.iter().enumerate())
        .filter(|(_, &b)| b == b'_')
        .any(|(i, _)| around(i, 3, b"set_config") || around(i, 8, b"advisory_lock"))
}

/// A `;` followed by more than whitespace (quoting aside: a false hit only costs the
/// precise pass).
pub(super) fn has_second_statement(bytes: &[u8]) -> bool {
    match bytes.iter().position(|&b| b == b';') {
        Some(i) => bytes[i + 1..]
            .iter()
            .any(|b| !b.is_ascii_whitespace() && *b != b';'),
        None => false,
    }
}

/// What the precise pass remembers of the statement it is in.
#[derive(Default)]
struct Leading<'a> {
    /// The first few words.
    words: Vec<&'a [u8]>,
    /// The previous word was WITH.
    after_with: bool,
    with_hold: bool,
}

/// Words of a statement kept for its leading keywords.
const KEPT_WORDS: usize = 4;

/// Tokenizes every statement and looks at its leading words and the functions it calls.
fn precise(sql: &str) -> SessionEffects {
    let bytes = sql.as_bytes();
    let mut effects = SessionEffects::default();
    let mut lexer = Lexer::new(sql);
    let mut current = Leading::default();
    loop {
        let token = lexer.next_token();
        if token.is_none_or(|t| t.kind == TokenKind::Semicolon) {
            statement(&current, &mut effects);
            current = Leading::default();
            if token.is_none() {
                return effects;
            }
            continue;
        }
        let Some(t) = token.filter(|t| t.kind == TokenKind::Word) else {
            current.after_with = false;
            continue;
        };
        let word = &bytes[t.start..t.end];
        if word.eq_ignore_ascii_case(b"set_config") {
            effects.settings = true;
        }
        if SESSION_LOCKS
            .iter()
            .any(|f| word.eq_ignore_ascii_case(f.as_bytes()))
        {
            effects.pin.get_or_insert(PinReason::AdvisoryLock);
        }
        current.with_hold |= current.after_with && word.eq_ignore_ascii_case(b"hold");
        current.after_with = word.eq_ignore_ascii_case(b"with");
        if current.words.len() < KEPT_WORDS {
            current.words.push(word);
        }
    }
}

/// Effects of one statement from its leading words (and `WITH HOLD` for DECLARE).
fn statement(current: &Leading<'_>, effects: &mut SessionEffects) {
    let words = &current.words;
    let is = |i: usize, w: &str| {
        words
            .get(i)
            .is_some_and(|x| x.eq_ignore_ascii_case(w.as_bytes()))
    };
    let has = |w: &str| words.iter().any(|x| x.eq_ignore_ascii_case(w.as_bytes()));
    if is(0, "set") {
        // SET LOCAL, SET TRANSACTION and SET CONSTRAINTS end with the transaction.
        let local = is(1, "local") || is(1, "transaction") || is(1, "constraints");
        effects.settings |= !local;
    } else if is(0, "reset") || is(0, "discard") {
        effects.settings = true;
    } else if is(0, "listen") {
        effects.pin.get_or_insert(PinReason::Listen);
    } else if is(0, "declare") && current.with_hold {
        effects.pin.get_or_insert(PinReason::CursorWithHold);
    } else if is(0, "create") && (has("temp") || has("temporary")) {
        effects.pin.get_or_insert(PinReason::TempTable);
    } else if is(0, "prepare") && !is(1, "transaction") {
        effects.pin.get_or_insert(PinReason::SqlPrepare);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pin(sql: &str) -> Option<&'static str> {
        session_effects(sql).pin.map(PinReason::as_str)
    }

    fn settings(sql: &str) -> bool {
        session_effects(sql).settings
    }

    #[test]
    fn settings_changes() {
        assert!(settings("SET search_path = app, public"));
        assert!(settings("set SESSION statement_timeout TO '5s'"));
        assert!(settings("SET ROLE app"));
        assert!(settings("RESET ALL"));
        assert!(settings("discard all"));
        assert!(settings("SELECT set_config('search_path', 'x', false)"));
        assert!(settings("BEGIN; SET search_path = x; COMMIT"));
        assert!(!settings("SET LOCAL search_path = x"));
        assert!(!settings("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"));
        assert!(!settings("UPDATE t SET a = 1 WHERE b = 2"));
        assert!(!settings(
            "SELECT abalance FROM pgbench_accounts WHERE aid = 7;"
        ));
        assert!(!settings(
            "SELECT 'set_config' AS not_a_call -- ; SET x = 1"
        ));
    }

    #[test]
    fn pins() {
        assert_eq!(pin("LISTEN jobs"), Some("listen"));
        assert_eq!(pin("SELECT pg_advisory_lock(42)"), Some("advisory_lock"));
        assert_eq!(
            pin("select PG_TRY_ADVISORY_LOCK_SHARED(1, 2)"),
            Some("advisory_lock")
        );
        assert_eq!(pin("SELECT pg_advisory_xact_lock(42)"), None);
        assert_eq!(pin("CREATE TEMP TABLE t (a int)"), Some("temp_table"));
        assert_eq!(
            pin("create global temporary table t (a int)"),
            Some("temp_table")
        );
        assert_eq!(pin("CREATE TABLE temperature (a int)"), None);
        assert_eq!(
            pin("DECLARE c CURSOR WITH HOLD FOR SELECT 1"),
            Some("cursor_with_hold")
        );
        assert_eq!(pin("DECLARE c CURSOR FOR SELECT 1"), None);
        let long = "DECLARE c BINARY INSENSITIVE NO SCROLL CURSOR WITH HOLD FOR SELECT 1";
        assert_eq!(pin(long), Some("cursor_with_hold"));
        assert_eq!(pin("SELECT 1; LISTEN x"), Some("listen"));
        assert_eq!(pin("SELECT 'LISTEN x'"), None);
        assert_eq!(pin("UNLISTEN x"), None);
        assert_eq!(pin("PREPARE q (int) AS SELECT $1"), Some("sql_prepare"));
        assert_eq!(pin("PREPARE TRANSACTION 'x'"), None);
    }
}
