//! Simple-protocol texts: each Query's statements (their analysis and statistics entry)
//! and what the text does to the session. A text this client sends a second time is
//! kept by its exact bytes, so from then on it is neither lexed nor analyzed again on
//! this connection; shapes (statements that differ only in literals) are kept apart from
//! texts, so a text never seen before still finds its shape without pg_query.

use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use super::{frames::deallocate_target, Analysis, Deallocate};
use crate::query::{FastHasher, FastMap, QueryInfo, TextEffects};
use crate::stats::QueryStats;

/// Texts, shapes and hashes kept at most (each map is emptied when full).
const TEXTS: usize = 256;
const SHAPES: usize = 256;
const SEEN: usize = 1024;
/// Longer texts are not kept by their bytes (they are rarely repeated verbatim).
const TEXT_MAX: usize = 4096;

/// A statement shape this client ran: its analysis and its statistics entry.
pub struct Shape {
    pub info: Arc<QueryInfo>,
    pub stats: OnceLock<Arc<QueryStats>>,
}

/// One statement of a Query: its shape and where its text is in the Query's text.
pub struct Part {
    pub shape: Arc<Shape>,
    pub text: Range<u32>,
}

/// What the proxy knows of one simple-protocol text.
pub struct SimpleQuery {
    /// The text itself when kept by it (to tell a hash collision from a repeat).
    text: Box<str>,
    first: Option<Part>,
    rest: Vec<Part>,
    /// Transaction mode: its session effects.
    pub effects: TextEffects,
    /// It is one `DEALLOCATE`.
    pub deallocate: Option<Deallocate>,
}

impl SimpleQuery {
    /// Its statements, in order.
    pub fn parts(&self) -> impl Iterator<Item = &Part> {
        self.first.iter().chain(self.rest.iter())
    }
}

#[derive(Default)]
pub struct Texts {
    kept: FastMap<u64, Arc<SimpleQuery>>,
    /// Hashes of texts seen once: seen again, a text is kept.
    seen: FastMap<u64, ()>,
    shapes: FastMap<u64, Arc<Shape>>,
}

impl Texts {
    /// What the Query text `text` (without its NUL) is, from what was kept or read
    /// now; `None` when it is not UTF-8. A kept text costs a hash and a compare.
    pub fn resolve(&mut self, text: &[u8], a: &Analysis<'_>) -> Option<Arc<SimpleQuery>> {
        let hash = std::hash::BuildHasherDefault::<FastHasher>::default().hash_one(text);
        if let Some(kept) = self.kept.get(&hash) {
            if kept.text.as_bytes() == text {
                return Some(kept.clone());
            }
        }
        let sql = std::str::from_utf8(text).ok()?;
        let keep = sql.len() <= TEXT_MAX && self.seen.contains_key(&hash);
        let query = Arc::new(self.read(sql, keep, a));
        if keep {
            if self.kept.len() >= TEXTS {
                self.kept.clear();
            }
            self.kept.insert(hash, query.clone());
        } else {
            if self.seen.len() >= SEEN {
                self.seen.clear();
            }
            self.seen.insert(hash, ());
        }
        Some(query)
    }

    fn read(&mut self, sql: &str, keep: bool, a: &Analysis<'_>) -> SimpleQuery {
        let (mut first, mut rest) = (None, Vec::new());
        for stmt in crate::query::split_statements(sql) {
            let start = stmt.text.as_ptr() as usize - sql.as_ptr() as usize;
            let text = start as u32..(start + stmt.text.len()) as u32;
            let part = Part {
                shape: self.shape(&stmt, a),
                text,
            };
            match first {
                None => first = Some(part),
                Some(_) => rest.push(part),
            }
        }
        SimpleQuery {
            text: if keep { sql.into() } else { Box::default() },
            first,
            rest,
            effects: match a.watch {
                true => crate::query::text_effects(sql),
                false => TextEffects::default(),
            },
            deallocate: deallocate_target(sql),
        }
    }

    fn shape(&mut self, stmt: &crate::query::Statement<'_>, a: &Analysis<'_>) -> Arc<Shape> {
        if let Some(shape) = self.shapes.get(&stmt.hash) {
            return shape.clone();
        }
        let shape = Arc::new(Shape {
            info: a.analyzer.analyze(stmt),
            stats: OnceLock::new(),
        });
        if self.shapes.len() >= SHAPES {
            self.shapes.clear();
        }
        self.shapes.insert(stmt.hash, shape.clone());
        shape
    }
}
