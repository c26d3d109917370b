//! Candidate indexes from what statements ask of their tables ([`super::tree`]),
//! resolved against the catalog: single columns, equality-then-range (or sort)
//! composites, pairs of equalities, INCLUDE variants for index-only scans, partial
//! indexes for a constant predicate every sample repeats, and GIN for containment,
//! text search and (with `pg_trgm`) `ILIKE '%…'`.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;

use super::tree::{ColUse, Level, Use};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Btree,
    Gin,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Btree => "btree",
            Method::Gin => "gin",
        }
    }
}

/// One index, as it would be created.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct IndexDef {
    pub table: String,
    pub method: Method,
    /// Column names, or a parenthesised expression.
    pub keys: Vec<String>,
    /// Operator class of a single-key GIN index (`jsonb_path_ops`, `gin_trgm_ops`).
    pub opclass: Option<String>,
    pub include: Vec<String>,
    pub predicate: Option<String>,
}

impl IndexDef {
    fn btree(table: &str, keys: Vec<String>) -> IndexDef {
        IndexDef {
            table: table.to_string(),
            method: Method::Btree,
            keys,
            opclass: None,
            include: Vec::new(),
            predicate: None,
        }
    }

    fn gin(table: &str, key: String, opclass: Option<&str>) -> IndexDef {
        IndexDef {
            method: Method::Gin,
            opclass: opclass.map(str::to_string),
            ..IndexDef::btree(table, vec![key])
        }
    }

    /// A name in the usual style, at most 63 bytes.
    pub fn name(&self) -> String {
        let mut parts = vec![self.table.rsplit('.').next().unwrap_or("").to_string()];
        for k in &self.keys {
            let clean: String = k
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                .collect();
            parts.push(clean.trim_matches('_').chars().take(20).collect());
        }
        if self.predicate.is_some() {
            parts.push("partial".into());
        }
        if self.method == Method::Gin {
            parts.push("gin".into());
        }
        let mut name = format!("idx_{}", parts.join("_"));
        name.truncate(63);
        name
    }

    /// The body after `CREATE INDEX [CONCURRENTLY] name`: `ON t USING … (…) …`.
    pub fn body(&self) -> String {
        let keys = match (&self.opclass, self.keys.as_slice()) {
            (Some(op), [k]) => format!("{k} {op}"),
            _ => self.keys.join(", "),
        };
        let mut sql = format!("ON {} USING {} ({keys})", self.table, self.method.as_str());
        if !self.include.is_empty() {
            sql.push_str(&format!(" INCLUDE ({})", self.include.join(", ")));
        }
        if let Some(p) = &self.predicate {
            sql.push_str(&format!(" WHERE {p}"));
        }
        sql
    }

    pub fn create_sql(&self) -> String {
        format!("CREATE INDEX CONCURRENTLY {} {};", self.name(), self.body())
    }

    /// True when `keys` start with all of this index's keys (same method and predicate).
    pub fn is_prefix_of(&self, method: Method, keys: &[String], predicate: Option<&str>) -> bool {
        self.method == method
            && self.predicate.as_deref() == predicate
            && keys.len() >= self.keys.len()
            && keys.iter().zip(&self.keys).all(|(a, b)| a == b)
    }
}

/// What the catalog says about the tables a statement names.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// Table as written -> column -> type (`format_type`).
    pub columns: HashMap<String, HashMap<String, String>>,
    /// Existing valid indexes: (table as written, method, key columns, predicate).
    pub indexes: Vec<(String, Method, Vec<String>, Option<String>)>,
    pub has_trgm: bool,
}

/// The table a use belongs to: its qualifier's, or the only table in scope with it.
fn table_of<'a>(level: &'a Level, u: &ColUse, catalog: &Catalog) -> Option<&'a str> {
    if let Some(q) = &u.qualifier {
        return level
            .scope
            .iter()
            .find(|(name, table)| name == q || table == q)
            .map(|(_, t)| t.as_str());
    }
    let mut having = level.scope.iter().filter(|(_, t)| {
        catalog
            .columns
            .get(t)
            .is_some_and(|cols| cols.contains_key(&u.column))
    });
    let first = having.next()?;
    having.next().is_none().then_some(first.1.as_str())
}

/// Uses per table, in order of appearance, deduplicated per kind.
#[derive(Default, Debug)]
struct TableUses {
    eq: Vec<String>,
    range: Vec<String>,
    sort: Vec<String>,
    group: Vec<String>,
    output: Vec<String>,
    consts: Vec<(String, String)>,
    contain: Vec<String>,
    trigram: Vec<String>,
}

fn push(v: &mut Vec<String>, c: &str) {
    if !v.iter().any(|x| x == c) {
        v.push(c.to_string());
    }
}

/// Candidates for one statement, from every sample's levels (constants count only when
/// every sample has the same one).
/// `extended`: the statement came with bound parameters, so a literal in its text is
/// fixed by the application (a simple-protocol literal must repeat in every sample).
pub fn for_statement(
    samples: &[Vec<Level>],
    extended: bool,
    catalog: &Catalog,
    max_columns: usize,
) -> BTreeSet<IndexDef> {
    let mut out = BTreeSet::new();
    let Some(first) = samples.first() else {
        return out;
    };
    for (i, level) in first.iter().enumerate() {
        let mut per: HashMap<&str, TableUses> = HashMap::new();
        for u in &level.uses {
            let Some(table) = table_of(level, u, catalog) else {
                continue;
            };
            let t = per.entry(table).or_default();
            match &u.what {
                Use::Eq => push(&mut t.eq, &u.column),
                Use::Range => push(&mut t.range, &u.column),
                Use::Sort(_) => push(&mut t.sort, &u.column),
                Use::Group => push(&mut t.group, &u.column),
                Use::Output => push(&mut t.output, &u.column),
                Use::Contain => push(&mut t.contain, &u.column),
                Use::Trigram => push(&mut t.trigram, &u.column),
                Use::Const(v) => {
                    let same_everywhere = samples.iter().all(|s| {
                        s.get(i).is_some_and(|l| {
                            l.uses
                                .iter()
                                .any(|o| o.column == u.column && o.what == u.what)
                        })
                    });
                    let fixed = extended || samples.len() >= 2;
                    if fixed && same_everywhere && !t.consts.iter().any(|(c, _)| c == &u.column) {
                        t.consts.push((u.column.clone(), v.clone()));
                    }
                }
            }
        }
        for (table, uses) in &per {
            btree_candidates(table, uses, level.star, max_columns, &mut out);
            gin_candidates(table, uses, catalog, &mut out);
        }
        for (expr, col) in &level.text_search {
            if let Some(table) = table_of(level, col, catalog) {
                out.insert(IndexDef::gin(table, format!("({expr})"), None));
            }
        }
    }
    out.retain(|c| !covered(c, catalog));
    out
}

#[allow(clippy::too_many_lines)] // to split: over 60 lines when the lint was turned on
fn btree_candidates(
    table: &str,
    u: &TableUses,
    star: bool,
    max: usize,
    out: &mut BTreeSet<IndexDef>,
) {
    for c in
        u.eq.iter()
            .chain(&u.range)
            .chain(u.sort.first())
            .chain(u.group.first())
    {
        out.insert(IndexDef::btree(table, vec![c.clone()]));
    }
    let mut eq: Vec<String> = u.eq.iter().take(max).cloned().collect();
    let tails: Vec<&String> = u.range.first().into_iter().chain(u.sort.first()).collect();
    let mut composites = Vec::new();
    if eq.len() > 1 {
        composites.push(eq.clone());
        let mut rev = eq.clone();
        rev.reverse();
        composites.push(rev);
    }
    for tail in &tails {
        if !eq.is_empty() && eq.len() < max && !eq.contains(tail) {
            let mut k = eq.clone();
            k.push((*tail).clone());
            composites.push(k);
        }
    }
    if u.group.len() > 1 {
        composites.push(u.group.iter().take(max).cloned().collect());
    }
    for keys in &composites {
        out.insert(IndexDef::btree(table, keys.clone()));
    }
    // Index-only scans: the widest composite (or the single key) plus what is output.
    let widest = composites
        .iter()
        .max_by_key(|k| k.len())
        .cloned()
        .or_else(|| eq.first().map(|c| vec![c.clone()]));
    if let (false, Some(keys)) = (star, widest) {
        let include: Vec<String> = u
            .output
            .iter()
            .filter(|c| !keys.contains(c))
            .cloned()
            .collect();
        if !include.is_empty() && include.len() <= 4 {
            let mut def = IndexDef::btree(table, keys);
            def.include = include;
            out.insert(def);
        }
    }
    // A constant equality every sample repeats: a partial index on what else is used.
    for (col, value) in &u.consts {
        eq.retain(|c| c != col);
        let mut keys: Vec<String> = eq.iter().take(max.saturating_sub(1)).cloned().collect();
        if let Some(tail) = tails.first() {
            if tail != &col {
                keys.push((*tail).clone());
            }
        }
        if !keys.is_empty() {
            let mut def = IndexDef::btree(table, keys);
            def.predicate = Some(format!("{col} = {value}"));
            out.insert(def);
        }
    }
}

fn gin_candidates(table: &str, u: &TableUses, catalog: &Catalog, out: &mut BTreeSet<IndexDef>) {
    let type_of = |c: &str| {
        catalog
            .columns
            .get(table)
            .and_then(|cols| cols.get(c))
            .map_or("", String::as_str)
    };
    for c in &u.contain {
        let opclass = (type_of(c) == "jsonb").then_some("jsonb_path_ops");
        out.insert(IndexDef::gin(table, c.clone(), opclass));
    }
    if catalog.has_trgm {
        for c in &u.trigram {
            let ty = type_of(c);
            if ty == "text" || ty.starts_with("character varying") {
                out.insert(IndexDef::gin(table, c.clone(), Some("gin_trgm_ops")));
            }
        }
    }
}

/// An existing index already starts with these keys (same method and predicate).
fn covered(c: &IndexDef, catalog: &Catalog) -> bool {
    catalog.indexes.iter().any(|(table, method, keys, pred)| {
        table == &c.table
            && c.include.is_empty()
            && c.opclass.is_none()
            && c.is_prefix_of(*method, keys, pred.as_deref())
    })
}
