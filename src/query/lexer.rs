//! A byte-level SQL tokenizer that knows just enough of PostgreSQL's lexical rules to
//! tell literals, identifiers, comments and statement separators apart.
//!
//! It never fails and never allocates: unknown bytes become one-byte punctuation and an
//! unterminated string, quoted identifier, dollar quote or comment runs to the end of the
//! input. Token boundaries always fall on ASCII bytes or the end of the input (every byte
//! >= 0x80 is an identifier byte, as in PostgreSQL), so slicing the `&str` at them is safe.

/// What a token is, as far as hashing and normalizing need to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenKind {
    /// Keyword or unquoted identifier (case-insensitive).
    Word,
    /// `"quoted identifier"` or `U&"..."` (case-sensitive, kept).
    QuotedIdent,
    /// String, number, bit string or dollar-quoted constant: never kept.
    Literal,
    /// `$1`-style parameter.
    Param,
    /// Run of operator characters such as `=` or `<>` (`::` is two `:` punctuation tokens).
    Operator,
    /// Any other single ASCII byte: `(`, `)`, `[`, `]`, `,`, `.`, `:` and stray bytes.
    Punct,
    /// `;`: a statement separator when outside parentheses.
    Semicolon,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: TokenKind,
    pub start: usize,
    pub end: usize,
}

/// How backslashes behave inside a single-quoted string.
#[derive(Clone, Copy)]
enum Quote {
    /// `'...'`, `B'...'`, `X'...'`, `N'...'`, `U&'...'`: only `''` escapes a quote
    /// (standard_conforming_strings = on, the default since PostgreSQL 9.1).
    Standard,
    /// `E'...'`: a backslash escapes the next byte as well.
    Escape,
}

pub(crate) struct Lexer<'a> {
    src: &'a [u8],
    pos: usize,
}

const SPACE: u8 = 1;
const IDENT_START: u8 = 2;
const IDENT_CONT: u8 = 4;
const OP: u8 = 8;

/// Byte classes in one table: a lookup per byte instead of a chain of range checks
/// (the lexer runs on every simple-protocol query).
static CLASSES: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        let mut class = 0;
        if matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            class |= SPACE;
        }
        // As in PostgreSQL's scanner, every byte >= 0x80 may be part of an identifier.
        if b.is_ascii_alphabetic() || b == b'_' || b >= 0x80 {
            class |= IDENT_START | IDENT_CONT;
        }
        if b.is_ascii_digit() || b == b'$' {
            class |= IDENT_CONT;
        }
        if matches!(
            b,
            b'+' | b'-'
                | b'*'
                | b'/'
                | b'<'
                | b'>'
                | b'='
                | b'~'
                | b'!'
                | b'@'
                | b'#'
                | b'%'
                | b'^'
                | b'&'
                | b'|'
                | b'`'
                | b'?'
        ) {
            class |= OP;
        }
        table[i] = class;
        i += 1;
    }
    table
}

fn is(b: u8, class: u8) -> bool {
    CLASSES[usize::from(b)] & class != 0
}

fn is_ident_start(b: u8) -> bool {
    is(b, IDENT_START)
}

fn is_ident_cont(b: u8) -> bool {
    is(b, IDENT_CONT)
}

fn is_op_char(b: u8) -> bool {
    is(b, OP)
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str) -> Self {
        Lexer {
            src: src.as_bytes(),
            pos: 0,
        }
    }

    /// Advances past bytes of `class`.
    fn skip_while(&mut self, class: u8) {
        let rest = self.src.get(self.pos..).unwrap_or_default();
        self.pos += rest
            .iter()
            .position(|&b| !is(b, class))
            .unwrap_or(rest.len());
    }

    fn peek(&self, ahead: usize) -> u8 {
        self.src.get(self.pos + ahead).copied().unwrap_or(0)
    }

    /// The next token, skipping whitespace and comments; `None` at the end of input.
    pub fn next_token(&mut self) -> Option<Token> {
        self.skip_trivia();
        let start = self.pos;
        let b = *self.src.get(start)?;
        let kind = match b {
            b'\'' => self.quoted_string(1, Quote::Standard),
            b'"' => self.quoted_ident(1),
            b'$' => self.dollar(),
            b'0'..=b'9' => self.number(),
            b'.' if self.peek(1).is_ascii_digit() => self.number(),
            b';' => {
                self.pos += 1;
                TokenKind::Semicolon
            }
            _ if is_ident_start(b) => self.word_or_prefixed_string(b),
            _ if is_op_char(b) => self.operator(),
            _ => {
                self.pos += 1;
                TokenKind::Punct
            }
        };
        Some(Token {
            kind,
            start,
            end: self.pos,
        })
    }

    /// Skips whitespace, `--` line comments and nested `/* */` block comments.
    fn skip_trivia(&mut self) {
        loop {
            self.skip_while(SPACE);
            match (self.peek(0), self.peek(1)) {
                (b'-', b'-') => {
                    let rest = &self.src[self.pos..];
                    self.pos += rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
                }
                (b'/', b'*') => self.block_comment(),
                _ => return,
            }
        }
    }

    fn block_comment(&mut self) {
        self.pos += 2;
        let mut nesting = 1u32;
        while self.pos < self.src.len() {
            match (self.src[self.pos], self.peek(1)) {
                (b'*', b'/') => {
                    self.pos += 2;
                    nesting -= 1;
                    if nesting == 0 {
                        return;
                    }
                }
                (b'/', b'*') => {
                    self.pos += 2;
                    nesting = nesting.saturating_add(1);
                }
                _ => self.pos += 1,
            }
        }
    }

    /// A single-quoted string whose opening quote is `skip - 1` bytes ahead.
    fn quoted_string(&mut self, skip: usize, quote: Quote) -> TokenKind {
        self.pos += skip;
        while self.pos < self.src.len() {
            match self.src[self.pos] {
                b'\'' if self.peek(1) == b'\'' => self.pos += 2,
                b'\'' => {
                    self.pos += 1;
                    return TokenKind::Literal;
                }
                b'\\' if matches!(quote, Quote::Escape) => {
                    self.pos = (self.pos + 2).min(self.src.len());
                }
                _ => self.pos += 1,
            }
        }
        TokenKind::Literal
    }

    fn quoted_ident(&mut self, skip: usize) -> TokenKind {
        self.pos += skip;
        while self.pos < self.src.len() {
            if self.src[self.pos] == b'"' {
                if self.peek(1) == b'"' {
                    self.pos += 2;
                    continue;
                }
                self.pos += 1;
                return TokenKind::QuotedIdent;
            }
            self.pos += 1;
        }
        TokenKind::QuotedIdent
    }

    /// `$1` parameter, `$tag$...$tag$` constant, or a lone `$`.
    fn dollar(&mut self) -> TokenKind {
        let start = self.pos;
        if self.peek(1).is_ascii_digit() {
            self.pos += 1;
            while self.peek(0).is_ascii_digit() {
                self.pos += 1;
            }
            return TokenKind::Param;
        }
        // The tag is an identifier without `$` (possibly empty) closed by a `$`.
        let mut end = start + 1;
        if end < self.src.len() && is_ident_start(self.src[end]) {
            while end < self.src.len() && is_ident_cont(self.src[end]) && self.src[end] != b'$' {
                end += 1;
            }
        }
        if self.src.get(end) != Some(&b'$') {
            self.pos += 1;
            return TokenKind::Punct;
        }
        let delim = &self.src[start..=end];
        let body = end + 1;
        self.pos = match self.src[body..]
            .windows(delim.len())
            .position(|w| w == delim)
        {
            Some(at) => body + at + delim.len(),
            None => self.src.len(),
        };
        TokenKind::Literal
    }

    /// `1`, `1.5`, `.5`, `1e10`, `1E-5`, `0x1F`, `0b101`, `1_000`; trailing identifier bytes
    /// (PostgreSQL's "trailing junk") stay part of the number.
    fn number(&mut self) -> TokenKind {
        let digits = |lx: &mut Self| {
            while lx.peek(0).is_ascii_digit() || lx.peek(0) == b'_' {
                lx.pos += 1;
            }
        };
        digits(self);
        if self.peek(0) == b'.' && self.peek(1) != b'.' {
            self.pos += 1;
            digits(self);
        }
        let exp_digit = match self.peek(1) {
            b'+' | b'-' => self.peek(2).is_ascii_digit(),
            c => c.is_ascii_digit(),
        };
        if matches!(self.peek(0), b'e' | b'E') && exp_digit {
            self.pos += 2;
            digits(self);
        }
        while self.peek(0).is_ascii_alphanumeric() || self.peek(0) == b'_' {
            self.pos += 1;
        }
        TokenKind::Literal
    }

    /// An identifier, or a string with a one-letter prefix (`E'`, `B'`, `X'`, `N'`, `U&'`)
    /// or a `U&"` quoted identifier.
    fn word_or_prefixed_string(&mut self, b: u8) -> TokenKind {
        match (b.to_ascii_lowercase(), self.peek(1), self.peek(2)) {
            (b'e', b'\'', _) => return self.quoted_string(2, Quote::Escape),
            (b'b' | b'x' | b'n', b'\'', _) => return self.quoted_string(2, Quote::Standard),
            (b'u', b'&', b'\'') => return self.quoted_string(3, Quote::Standard),
            (b'u', b'&', b'"') => return self.quoted_ident(3),
            _ => {}
        }
        self.skip_while(IDENT_CONT);
        TokenKind::Word
    }

    /// A run of operator characters, stopping before a comment start.
    fn operator(&mut self) -> TokenKind {
        self.pos += 1;
        while is_op_char(self.peek(0)) {
            if matches!((self.peek(0), self.peek(1)), (b'-', b'-') | (b'/', b'*')) {
                break;
            }
            self.pos += 1;
        }
        TokenKind::Operator
    }
}
