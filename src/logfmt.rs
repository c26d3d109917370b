//! How log lines reach stderr: in text mode one event is one line (a statement's
//! newlines are escaped as `\n`, carriage returns as `\r`), and ANSI colour is used
//! only when stderr is a terminal, so files and journald get plain text.

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;

/// True when colour codes should be written (stderr is a terminal).
pub fn ansi() -> bool {
    io::stderr().is_terminal()
}

/// `event` with every newline but a trailing one escaped. The fmt layer formats a whole
/// event into one buffer and writes it at once, so this sees whole events.
pub fn escape_newlines(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let body = event.strip_suffix(b"\n").unwrap_or(event);
    if !body.iter().any(|&b| b == b'\n' || b == b'\r') {
        return std::borrow::Cow::Borrowed(event);
    }
    let mut out = Vec::with_capacity(event.len() + 16);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    if body.len() < event.len() {
        out.push(b'\n');
    }
    std::borrow::Cow::Owned(out)
}

/// Stderr, one event per line.
#[derive(Debug, Clone, Copy, Default)]
pub struct OneLineStderr;

pub struct OneLineWriter(io::Stderr);

impl Write for OneLineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_all(&escape_newlines(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<'a> MakeWriter<'a> for OneLineStderr {
    type Writer = OneLineWriter;

    fn make_writer(&'a self) -> OneLineWriter {
        OneLineWriter(io::stderr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_event_is_one_line() {
        let event = b"WARN slow statement query=SELECT\n  a\r\nFROM t\n";
        assert_eq!(
            &*escape_newlines(event),
            b"WARN slow statement query=SELECT\\n  a\\r\\nFROM t\n"
        );
        assert!(matches!(
            escape_newlines(b"plain\n"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(&*escape_newlines(b"no end\nx"), b"no end\\nx");
    }
}
