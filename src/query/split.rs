//! Splitting simple-protocol text into statements and hashing each statement's shape
//! (its token stream with literals stripped), in one pass and without allocating.
//!
//! The shape hash is the analysis cache key, so it should be equal exactly when pg_query
//! would give the same fingerprint. Beyond dropping literal values it therefore mirrors
//! two things pg_query's fingerprint does: keywords and unquoted identifiers are
//! case-insensitive, and repeated list items are folded (`IN (1, 2, 3)` hashes like
//! `IN (1)`, and `VALUES (1, 'a'), (2, 'b')` like `VALUES (1, 'a')`), so IN lists and
//! multi-row inserts of any length share one cache entry instead of one per length.

use super::lexer::{Lexer, Token, TokenKind};

/// One statement of a simple-protocol query string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Statement<'a> {
    /// From the first token to the last, without the terminating `;` and without
    /// surrounding whitespace or comments.
    pub text: &'a str,
    /// Hash of the token stream with literals stripped (see the module docs).
    pub hash: u64,
    /// Maximum nesting depth of parentheses and brackets.
    pub depth: u32,
}

/// Splits `sql` at top-level `;` (not inside quotes, comments, parentheses or a
/// `BEGIN ATOMIC ... END` routine body), skipping empty statements.
pub fn split_statements(sql: &str) -> Statements<'_> {
    Statements {
        sql,
        lexer: Lexer::new(sql),
    }
}

/// Iterator returned by [`split_statements`].
pub struct Statements<'a> {
    sql: &'a str,
    lexer: Lexer<'a>,
}

impl<'a> Iterator for Statements<'a> {
    type Item = Statement<'a>;

    fn next(&mut self) -> Option<Statement<'a>> {
        loop {
            let mut shape = Shape::new();
            let mut span: Option<(usize, usize)> = None;
            let mut at_end = true;
            while let Some(tok) = self.lexer.next_token() {
                if tok.kind == TokenKind::Semicolon && shape.at_top_level() {
                    at_end = false;
                    break;
                }
                shape.feed(self.sql.as_bytes(), tok);
                span = Some((span.map_or(tok.start, |s| s.0), tok.end));
            }
            if let Some((start, end)) = span {
                return Some(Statement {
                    text: self.sql.get(start..end).unwrap_or_default(),
                    hash: shape.finish(),
                    depth: shape.max_depth,
                });
            }
            if at_end {
                return None;
            }
        }
    }
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;
/// Parenthesis levels whose list items are folded; deeper ones are hashed verbatim.
const TRACKED: usize = 8;
/// Hash word standing for any literal or parameter.
const VALUE: u64 = 0x0076_616C_7565;

fn mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(5) ^ w).wrapping_mul(K)
}

/// Murmur3's finalizer, so that the cheap per-word mixing ends well distributed.
fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// ASCII-lowercases the eight bytes of `w` at once; other bytes, including UTF-8 ones,
/// are unchanged. (Byte by byte through a buffer cost a store-forwarding stall per word.)
fn lower8(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let low = w & LOW7;
    // The top bit of each byte of `ge_a` says byte >= 'A', of `gt_z` says byte > 'Z'.
    let ge_a = low + 0x3f3f_3f3f_3f3f_3f3f;
    let gt_z = low + 0x2525_2525_2525_2525;
    let upper = ge_a & !gt_z & !w & HIGH;
    w | (upper >> 2)
}

/// Mixes a token's kind, length and bytes (ASCII-lowercased for case-insensitive words).
pub(crate) fn mix_bytes(h: u64, tag: u8, bytes: &[u8], lower: bool) -> u64 {
    let mut h = mix(h, u64::from(tag) | (bytes.len() as u64) << 8);
    let mut chunks = bytes.chunks_exact(8);
    let tail = chunks.remainder();
    let words = chunks
        .by_ref()
        .map(|c| c.try_into().map_or(0, u64::from_le_bytes));
    let last =
        (!tail.is_empty()).then(|| tail.iter().rev().fold(0u64, |w, &b| w << 8 | u64::from(b)));
    for word in words.chain(last) {
        h = mix(h, if lower { lower8(word) } else { word });
    }
    h
}

/// The hash of a text without tokens (never produced by the iterator, which skips empty
/// statements; used for a Parse of an empty query).
pub(crate) fn empty_hash() -> u64 {
    Shape::new().finish()
}

/// Folding state of one parenthesis level.
#[derive(Clone, Copy, Default)]
struct Level {
    /// The enclosing level's hash when this one opened.
    outer: u64,
    /// Last complete item (a value or a closed group) and the hash right after it.
    item: Option<(u64, u64)>,
    /// Exactly one `,` followed that item.
    comma: bool,
    /// `[...]`: array elements are not folded, as pg_query keeps them all.
    bracket: bool,
}

/// Tracks `CREATE FUNCTION/PROCEDURE ... BEGIN ATOMIC ... END`, whose body contains `;`
/// that do not end the statement (the same rule psql uses).
#[derive(Default)]
struct Routine {
    words: u8,
    create: bool,
    routine: bool,
    blocks: u32,
}

impl Routine {
    fn word(&mut self, w: &[u8]) {
        if self.words < 4 {
            self.words += 1;
            if self.words == 1 {
                self.create = w.eq_ignore_ascii_case(b"create");
            } else if self.create
                && (w.eq_ignore_ascii_case(b"function") || w.eq_ignore_ascii_case(b"procedure"))
            {
                self.routine = true;
            }
        } else if self.routine {
            if w.eq_ignore_ascii_case(b"begin") || w.eq_ignore_ascii_case(b"case") {
                self.blocks = self.blocks.saturating_add(1);
            } else if w.eq_ignore_ascii_case(b"end") {
                self.blocks = self.blocks.saturating_sub(1);
            }
        }
    }
}

struct Shape {
    h: u64,
    levels: [Level; TRACKED + 1],
    nesting: u32,
    max_depth: u32,
    routine: Routine,
}

impl Shape {
    fn new() -> Self {
        Shape {
            h: 0,
            levels: [Level::default(); TRACKED + 1],
            nesting: 0,
            max_depth: 0,
            routine: Routine::default(),
        }
    }

    fn at_top_level(&self) -> bool {
        self.nesting == 0 && self.routine.blocks == 0
    }

    /// The folding state of the current level, if it is shallow enough to be tracked.
    fn level(&mut self) -> Option<&mut Level> {
        self.levels.get_mut(self.nesting as usize)
    }

    fn feed(&mut self, src: &[u8], tok: Token) {
        let bytes = src.get(tok.start..tok.end).unwrap_or_default();
        match (tok.kind, bytes) {
            (TokenKind::Literal | TokenKind::Param, _) => self.item(VALUE),
            (TokenKind::Punct, [open @ (b'(' | b'[')]) => self.open(*open),
            (TokenKind::Punct, [close @ (b')' | b']')]) => self.close(*close),
            (TokenKind::Punct, b",") => {
                self.h = mix(self.h, u64::from(b','));
                if let Some(level) = self.level() {
                    if level.item.is_some() && !level.comma {
                        level.comma = true;
                    } else {
                        level.item = None;
                        level.comma = false;
                    }
                }
            }
            (kind, _) => {
                if kind == TokenKind::Word {
                    self.routine.word(bytes);
                }
                self.h = mix_bytes(self.h, kind as u8, bytes, kind == TokenKind::Word);
                if let Some(level) = self.level() {
                    level.item = None;
                    level.comma = false;
                }
            }
        }
    }

    /// A complete list item: folded into the previous one when equal and only a comma
    /// separates them (the comma is dropped too).
    fn item(&mut self, x: u64) {
        let h = self.h;
        match self.level() {
            Some(level) if !level.bracket && level.comma && level.item.map(|i| i.0) == Some(x) => {
                let after = level.item.map_or(h, |i| i.1);
                level.comma = false;
                self.h = after;
            }
            Some(level) => {
                let after = mix(h, x);
                level.item = Some((x, after));
                level.comma = false;
                self.h = after;
            }
            None => self.h = mix(h, x),
        }
    }

    fn open(&mut self, open: u8) {
        self.nesting = self.nesting.saturating_add(1);
        self.max_depth = self.max_depth.max(self.nesting);
        let h = self.h;
        match self.level() {
            Some(level) => {
                *level = Level {
                    outer: h,
                    item: None,
                    comma: false,
                    bracket: open == b'[',
                };
                self.h = u64::from(open);
            }
            None => self.h = mix(h, u64::from(open)),
        }
    }

    fn close(&mut self, close: u8) {
        if self.nesting == 0 {
            // An unbalanced `)`: hashed like any other token.
            self.h = mix(self.h, u64::from(close));
            if let Some(level) = self.level() {
                level.item = None;
            }
            return;
        }
        let h = mix(self.h, u64::from(close));
        let outer = self.level().map(|level| level.outer);
        self.nesting -= 1;
        match outer {
            Some(outer) => {
                self.h = outer;
                self.item(fmix(h));
            }
            None => self.h = h,
        }
    }

    fn finish(&self) -> u64 {
        fmix(mix(self.h, u64::from(self.nesting)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower8_matches_ascii_lowercase() {
        let bytes: Vec<u8> = (0..=255u8).collect();
        for chunk in bytes.chunks(8) {
            let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
            let expected: Vec<u8> = chunk.iter().map(u8::to_ascii_lowercase).collect();
            assert_eq!(lower8(word).to_le_bytes().to_vec(), expected);
        }
        assert_eq!(
            mix_bytes(0, 1, b"SeLeCt_Abalance", true),
            mix_bytes(0, 1, b"select_abalance", true)
        );
    }
}
