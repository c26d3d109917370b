//! The relay's part in transaction pooling's session rules: renaming prepared
//! statements and hiding the answers to what the proxy adds ([`super::super::prepared`]),
//! answering Parse-only requests and DEALLOCATE itself, and noticing statements with
//! session effects (settings, pins).

use bytes::{Buf, BytesMut};

use super::super::prepared::{deallocate_target, Deallocate};
use super::Relay;
use crate::protocol::messages;
use crate::protocol::read_cstr;
use crate::query::session_effects;

impl Relay {
    /// A request of named Parses only, outside a transaction and with no server: the
    /// statements are remembered (prepared on a server at their first Bind) and the
    /// request is answered here, ParseComplete each and ReadyForQuery. A client that
    /// prepares synchronously (pgbench -M prepared) must not wait for a server while
    /// another of its connections holds one. `len` is the Sync's length at `c_fwd`.
    pub(super) fn answer_parse_only(&mut self, len: usize) -> bool {
        let quiet = self.prepared.is_some()
            && self.server.is_none()
            && self.pending == 0
            && self.tx_status == b'I'
            && self.c_fwd > 0
            && self.s_fwd == self.sbuf.len();
        if !quiet {
            return false;
        }
        let Some(parses) = crate::protocol::frame::named_parses(&self.cbuf[..self.c_fwd]) else {
            return false;
        };
        self.cbuf.advance(self.c_fwd + len);
        self.c_fwd = 0;
        self.unsynced = false;
        self.wants_server = false;
        let out = self.client_outbox();
        for _ in 0..parses {
            out.extend_from_slice(b"1\0\0\0\x04");
        }
        messages::ready_for_query(out, b'I');
        self.commit_outbox();
        true
    }

    /// Renames the statement a Parse, Bind, Describe or Close at `c_fwd` names (transaction
    /// mode); returns the frame's length afterwards.
    pub(super) fn rename_statements(&mut self, tag: u8, len: usize) -> usize {
        let Some(prepared) = self.prepared.as_mut() else {
            return len;
        };
        if !matches!(tag, b'P' | b'B' | b'D' | b'C') {
            return len;
        }
        let body = &self.cbuf[self.c_fwd + 5..self.c_fwd + len];
        let Some(renamed) = prepared.client.rewrite(tag, body) else {
            return len;
        };
        splice(&mut self.cbuf, self.c_fwd, len, renamed);
        renamed.len()
    }

    /// Looks for session effects in a Query or Parse (body at `body` in `cbuf`): a
    /// possible settings change is noted; a pin keeps the server for good.
    /// A Bind of a statement whose Parse may change settings: the change happens when it
    /// runs, perhaps in a later request than its Parse (drivers prepare, then execute).
    pub(super) fn note_bind(&mut self, body: std::ops::Range<usize>) {
        let body = &self.cbuf[body];
        let mut pos = 0;
        let (Some(_portal), Some(statement)) =
            (read_cstr(body, &mut pos), read_cstr(body, &mut pos))
        else {
            return;
        };
        if self.settings_statements.contains(statement) {
            self.settings_touched = true;
        }
        let (Some(found), Some(known)) = (
            self.opaque_statements.get_mut(statement),
            self.functions.as_deref(),
        ) else {
            return;
        };
        // Names learned since the Parse: built-ins drop out, so a statement calling only
        // built-ins stops costing a check.
        found.unknown.retain(|name| match known.builtin_only(name) {
            Some(true) => false,
            Some(false) => {
                found.opaque = true;
                false
            }
            None => true,
        });
        self.opacity.opaque |= found.opaque;
        for name in &found.unknown {
            crate::query::note_call(name, known, &mut self.opacity);
        }
        if !found.any() {
            self.opaque_statements.remove(statement);
        }
    }

    pub(super) fn note_effects(&mut self, tag: u8, body: std::ops::Range<usize>) {
        let body = &self.cbuf[body];
        let mut pos = 0;
        let name = match tag {
            b'P' => read_cstr(body, &mut pos),
            _ => None,
        };
        let Some(sql) = read_cstr(body, &mut pos) else {
            return;
        };
        let effects = session_effects(sql);
        self.settings_touched |= effects.settings;
        let mut found = crate::query::Opacity::default();
        if let Some(known) = self.functions.as_deref() {
            if crate::query::changes_functions(sql) {
                known.forget_all();
            }
            crate::query::opacity(sql, known, &mut found);
            self.opacity.opaque |= found.opaque;
            for name in &found.unknown {
                crate::query::note_call(name, known, &mut self.opacity);
            }
        }
        if let Some(name) = name {
            // Remembered by the name the server knows (renamed already in transaction
            // mode), so its Binds are recognised; a reused name forgets the old text.
            if found.any() {
                self.opaque_statements.insert(name.to_string(), found);
            } else if !self.opaque_statements.is_empty() {
                self.opaque_statements.remove(name);
            }
            if effects.settings {
                self.settings_statements.insert(name.to_string());
            } else if !self.settings_statements.is_empty() {
                self.settings_statements.remove(name);
            }
        }
        if let Some(reason) = effects.pin {
            let sql = sql.to_owned();
            self.pin(reason, &sql);
        }
    }

    /// Keeps the server for the rest of the session; `sql` is what caused it (told once
    /// to `on_pin`, which logs it normalized).
    pub fn pin(&mut self, reason: crate::query::PinReason, sql: &str) {
        self.pinned = Some(reason);
        self.watch_effects = false;
        self.release_when_idle = false;
        if let Some(mut on_pin) = self.on_pin.take() {
            on_pin(reason, sql);
        }
    }

    /// Follows the Parses owed by the server and the retry of a request whose cached
    /// plan went stale: true for a server frame the client must not see (the
    /// ParseComplete of a Parse the proxy added, or the failed attempt of a retry).
    pub(super) fn hide_server_frame(&mut self, tag: u8, frame: std::ops::Range<usize>) -> bool {
        let (Some(prepared), Some(server)) = (self.prepared.as_mut(), self.server.as_mut()) else {
            return false;
        };
        if tag == b'3' && self.hidden_closes > 0 {
            // Closes the proxy put first on this server: their answers come first.
            self.hidden_closes -= 1;
            return true;
        }
        let batch = self.requests_answered;
        if prepared.retrying.is_some() {
            if tag == b'Z' {
                prepared.retrying = None;
                if let Some(resend) = prepared.resend.take() {
                    // Nothing was read from the client meanwhile: the retry goes first.
                    let tail = self.cbuf.split_off(0);
                    self.cbuf.extend_from_slice(&resend);
                    self.cbuf.unsplit(tail);
                    self.c_fwd += resend.len();
                }
            }
            return true;
        }
        match tag {
            b'1' => prepared.parse_complete(),
            b'E' => {
                let body = &self.sbuf[frame.start + 5..frame.end];
                let clear = self.c_fwd == 0 && !self.cscan.mid_frame();
                if clear && prepared.begin_retry(batch, self.requests_framed, body, server) {
                    return true;
                }
                prepared.error(batch, server);
                false
            }
            b'Z' => {
                prepared.retries.answered(batch);
                false
            }
            other => {
                prepared.retries.progress(other);
                false
            }
        }
    }

    /// Closes `names` (statements of clients that left) on the server just attached, in
    /// front of the request about to go: Close messages with no Sync of their own, whose
    /// CloseCompletes are hidden. Closing a statement the server lacks is no error.
    pub fn close_statements(&mut self, names: &[std::sync::Arc<str>]) {
        if names.is_empty() || self.server.is_none() {
            return;
        }
        let mut closes = BytesMut::new();
        for name in names {
            closes.extend_from_slice(b"C");
            closes.extend_from_slice(&(4 + 1 + name.len() as u32 + 1).to_be_bytes());
            closes.extend_from_slice(b"S");
            closes.extend_from_slice(name.as_bytes());
            closes.extend_from_slice(b"\0");
        }
        splice(&mut self.cbuf, 0, 0, &closes);
        self.c_fwd += closes.len();
        self.hidden_closes += names.len() as u32;
        tracing::debug!(
            count = names.len(),
            "closing departed clients' prepared statements"
        );
    }

    /// SQL `DEALLOCATE name` of a statement the client prepared with the protocol
    /// (renamed, and perhaps on other servers): forgotten and answered here when nothing
    /// is in flight. `DEALLOCATE ALL` goes to the server; the servers' records are then
    /// cleared as they are met, so statements are prepared again where needed. `len` is
    /// the Query's length at `c_fwd`. True when the Query was answered.
    pub(super) fn answer_deallocate(&mut self, len: usize) -> bool {
        let Some(prepared) = self.prepared.as_mut() else {
            return false;
        };
        let body = &self.cbuf[self.c_fwd + 5..self.c_fwd + len];
        let mut pos = 0;
        let Some(target) = read_cstr(body, &mut pos).and_then(deallocate_target) else {
            return false;
        };
        let name = match target {
            Deallocate::All => {
                prepared.client.forget_all();
                self.forget_server_statements = true;
                return false;
            }
            Deallocate::Name(name) => name,
        };
        let quiet = self.pending == 0
            && self.tx_status != b'E'
            && self.c_fwd == 0
            && self.s_fwd == self.sbuf.len();
        if !quiet || !prepared.client.forget_name(&name) {
            return false;
        }
        self.cbuf.advance(len);
        let status = self.tx_status;
        let out = self.client_outbox();
        messages::command_complete(out, "DEALLOCATE");
        messages::ready_for_query(out, status);
        self.commit_outbox();
        true
    }

    /// The first piece of a Bind too big to wait for, at `c_fwd` (`len` bytes at hand):
    /// its statement renamed, and prepared on the attached server if it lacks it.
    /// Returns the piece's length afterwards (the frame's remaining bytes are unchanged).
    pub(super) fn rename_streamed_bind(&mut self, len: usize) -> usize {
        let Some(prepared) = self.prepared.as_mut() else {
            return len;
        };
        let at = self.c_fwd;
        let renamed = prepared
            .client
            .rewrite_bind_start(&self.cbuf[at..at + 5], &self.cbuf[at + 5..at + len]);
        let mut len = len;
        if let Some((start, replaced)) = renamed {
            splice(&mut self.cbuf, at, 5 + replaced, &start);
            len = len - 5 - replaced + start.len();
        }
        if let Some(server) = self.server.as_mut() {
            let batch = self.requests_framed;
            self.c_fwd += prepared.place(&mut self.cbuf, at, at + len, batch, server);
        }
        len
    }
}

/// Replaces `buf[at..at + old_len]` with `new`, moving what follows in place (no
/// allocation unless the buffer must grow past its capacity).
fn splice(buf: &mut BytesMut, at: usize, old_len: usize, new: &[u8]) {
    let (tail, total) = (at + old_len, buf.len());
    if new.len() > old_len {
        let grow = new.len() - old_len;
        buf.resize(total + grow, 0);
        buf.copy_within(tail..total, tail + grow);
    } else if new.len() < old_len {
        let shrink = old_len - new.len();
        buf.copy_within(tail..total, tail - shrink);
        buf.truncate(total - shrink);
    }
    buf[at..at + new.len()].copy_from_slice(new);
}
