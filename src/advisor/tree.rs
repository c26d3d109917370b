//! What a statement asks of its tables, read from pg_query's parse tree: columns in
//! equality, IN, range and join predicates, ORDER BY (with LIMIT), GROUP BY, the
//! columns it outputs, constant equalities (for partial indexes), and the predicates
//! only GIN can serve (containment, `@@`, `ILIKE '%…'`).
//!
//! Columns are kept with the qualifier they were written with; [`super::candidates`]
//! resolves them to tables with the catalog. Must run on a pg_query worker thread.

use pg_query::protobuf::{a_const, AExprKind, BoolExprType, Node, SelectStmt};
use pg_query::NodeEnum;

/// How a column is used.
#[derive(Debug, Clone, PartialEq)]
pub enum Use {
    Eq,
    Range,
    /// ORDER BY under a LIMIT; `true` when descending.
    Sort(bool),
    Group,
    Output,
    /// `col = <constant>`: the constant as SQL.
    Const(String),
    /// `@>`, `<@`, `?`, `?|`, `?&`, `&&`: GIN on the column.
    Contain,
    /// `ILIKE`/`LIKE` with a leading wildcard: trigram GIN.
    Trigram,
}

/// One column use, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct ColUse {
    pub qualifier: Option<String>,
    pub column: String,
    pub what: Use,
}

/// One SELECT (or UPDATE/DELETE) level: its tables and what it uses of them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Level {
    /// `(alias or name, table as written)`.
    pub scope: Vec<(String, String)>,
    pub uses: Vec<ColUse>,
    /// `SELECT *` (or `t.*`): no index-only scan.
    pub star: bool,
    /// `to_tsvector(…) @@ …`: the expression (qualifiers removed) and a column in it.
    pub text_search: Vec<(String, ColUse)>,
}

/// Every level of `sql`; empty when it does not parse or is not DML.
pub fn levels(sql: &str) -> Vec<Level> {
    let Ok(parsed) = pg_query::parse(sql, 0) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for raw in &parsed.protobuf.stmts {
        if let Some(node) = raw.stmt.as_ref().and_then(|s| s.node.as_ref()) {
            statement(node, &mut out);
        }
    }
    out
}

fn statement(node: &NodeEnum, out: &mut Vec<Level>) {
    match node {
        NodeEnum::SelectStmt(s) => select(s, out),
        NodeEnum::UpdateStmt(u) => {
            let mut level = Level::default();
            if let Some(r) = &u.relation {
                add_range_var(r, &mut level);
            }
            from_items(&u.from_clause, &mut level, out);
            predicate(u.where_clause.as_deref(), &mut level, out);
            out.push(level);
        }
        NodeEnum::DeleteStmt(d) => {
            let mut level = Level::default();
            if let Some(r) = &d.relation {
                add_range_var(r, &mut level);
            }
            from_items(&d.using_clause, &mut level, out);
            predicate(d.where_clause.as_deref(), &mut level, out);
            out.push(level);
        }
        NodeEnum::ExplainStmt(e) => {
            if let Some(q) = e.query.as_ref().and_then(|q| q.node.as_ref()) {
                statement(q, out);
            }
        }
        _ => {}
    }
}

fn select(s: &SelectStmt, out: &mut Vec<Level>) {
    if let Some(with) = &s.with_clause {
        for cte in &with.ctes {
            if let Some(NodeEnum::CommonTableExpr(c)) = &cte.node {
                if let Some(q) = c.ctequery.as_ref().and_then(|q| q.node.as_ref()) {
                    statement(q, out);
                }
            }
        }
    }
    for arm in [&s.larg, &s.rarg].into_iter().flatten() {
        select(arm, out);
    }
    if s.from_clause.is_empty() {
        return;
    }
    let mut level = Level::default();
    from_items(&s.from_clause, &mut level, out);
    predicate(s.where_clause.as_deref(), &mut level, out);
    if s.limit_count.is_some() {
        for item in &s.sort_clause {
            if let Some(NodeEnum::SortBy(by)) = &item.node {
                // 3 = SORTBY_DESC
                let desc = by.sortby_dir == 3;
                if let Some((q, c)) = column(by.node.as_deref()) {
                    level.uses.push(use_of(q, c, Use::Sort(desc)));
                }
            }
        }
    }
    for g in &s.group_clause {
        if let Some((q, c)) = column(Some(g)) {
            level.uses.push(use_of(q, c, Use::Group));
        }
    }
    for t in &s.target_list {
        if let Some(NodeEnum::ResTarget(rt)) = &t.node {
            outputs(rt.val.as_deref(), &mut level);
        }
    }
    out.push(level);
}

/// Output columns; anything but plain columns (and aggregates over them) is ignored.
fn outputs(node: Option<&Node>, level: &mut Level) {
    match node.and_then(|n| n.node.as_ref()) {
        Some(NodeEnum::ColumnRef(c)) => {
            if c.fields
                .iter()
                .any(|f| matches!(f.node, Some(NodeEnum::AStar(_))))
            {
                level.star = true;
            } else if let Some((q, col)) = column(node) {
                level.uses.push(use_of(q, col, Use::Output));
            }
        }
        Some(NodeEnum::FuncCall(f)) => {
            for a in &f.args {
                outputs(Some(a), level);
            }
        }
        _ => {}
    }
}

fn from_items(items: &[Node], level: &mut Level, out: &mut Vec<Level>) {
    for item in items {
        from_item(item.node.as_ref(), level, out);
    }
}

fn from_item(node: Option<&NodeEnum>, level: &mut Level, out: &mut Vec<Level>) {
    match node {
        Some(NodeEnum::RangeVar(r)) => add_range_var(r, level),
        Some(NodeEnum::JoinExpr(j)) => {
            from_item(j.larg.as_ref().and_then(|n| n.node.as_ref()), level, out);
            from_item(j.rarg.as_ref().and_then(|n| n.node.as_ref()), level, out);
            predicate(j.quals.as_deref(), level, out);
        }
        Some(NodeEnum::RangeSubselect(sub)) => {
            if let Some(q) = sub.subquery.as_ref().and_then(|q| q.node.as_ref()) {
                statement(q, out);
            }
        }
        _ => {}
    }
}

fn add_range_var(r: &pg_query::protobuf::RangeVar, level: &mut Level) {
    let table = if r.schemaname.is_empty() {
        r.relname.clone()
    } else {
        format!("{}.{}", r.schemaname, r.relname)
    };
    let name = r
        .alias
        .as_ref()
        .map_or_else(|| r.relname.clone(), |a| a.aliasname.clone());
    level.scope.push((name, table));
}

fn use_of(qualifier: Option<String>, column: String, what: Use) -> ColUse {
    ColUse {
        qualifier,
        column,
        what,
    }
}

/// A column reference (through casts): `(qualifier, column)`.
fn column(node: Option<&Node>) -> Option<(Option<String>, String)> {
    match node?.node.as_ref()? {
        NodeEnum::ColumnRef(c) => {
            let names: Vec<&str> = c
                .fields
                .iter()
                .filter_map(|f| match &f.node {
                    Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
                    _ => None,
                })
                .collect();
            match names.as_slice() {
                [col] => Some((None, col.to_string())),
                [.., q, col] => Some((Some(q.to_string()), col.to_string())),
                [] => None,
            }
        }
        NodeEnum::TypeCast(t) => column(t.arg.as_deref()),
        _ => None,
    }
}

fn predicate(node: Option<&Node>, level: &mut Level, out: &mut Vec<Level>) {
    let Some(n) = node.and_then(|n| n.node.as_ref()) else {
        return;
    };
    match n {
        NodeEnum::BoolExpr(b) if b.boolop != BoolExprType::NotExpr as i32 => {
            for a in &b.args {
                predicate(Some(a), level, out);
            }
        }
        NodeEnum::AExpr(e) => expression(e, level),
        NodeEnum::SubLink(s) => {
            if let Some(q) = s.subselect.as_ref().and_then(|q| q.node.as_ref()) {
                statement(q, out);
            }
        }
        _ => {}
    }
}

fn expression(e: &pg_query::protobuf::AExpr, level: &mut Level) {
    let op = e
        .name
        .last()
        .and_then(|n| match &n.node {
            Some(NodeEnum::String(s)) => Some(s.sval.as_str()),
            _ => None,
        })
        .unwrap_or("");
    let kind = AExprKind::try_from(e.kind).unwrap_or(AExprKind::Undefined);
    let (l, r) = (e.lexpr.as_deref(), e.rexpr.as_deref());
    let (lc, rc) = (column(l), column(r));
    let mut add = |c: Option<(Option<String>, String)>, what: Use| {
        if let Some((q, col)) = c {
            level.uses.push(use_of(q, col, what));
        }
    };
    match (kind, op) {
        (AExprKind::AexprOp, "=") => {
            if let Some(value) = constant(r) {
                add(lc.clone(), Use::Const(value));
            }
            add(lc, Use::Eq);
            add(rc, Use::Eq);
        }
        (AExprKind::AexprOp, "<" | ">" | "<=" | ">=") => {
            add(lc, Use::Range);
            add(rc, Use::Range);
        }
        (AExprKind::AexprOpAny | AExprKind::AexprIn, "=") => add(lc, Use::Eq),
        (AExprKind::AexprBetween | AExprKind::AexprBetweenSym, _) => add(lc, Use::Range),
        (AExprKind::AexprOp, "@>" | "<@" | "?" | "?|" | "?&" | "&&") => add(lc, Use::Contain),
        (AExprKind::AexprOp, "@@") => text_search(l, level),
        (AExprKind::AexprLike | AExprKind::AexprIlike, "~~" | "~~*") => {
            let leading_wildcard = match constant(r) {
                Some(v) => v.starts_with("'%"),
                // A parameter: its values decide, and they are often '%…%'.
                None => true,
            };
            if leading_wildcard {
                add(lc, Use::Trigram);
            }
        }
        _ => {}
    }
}

/// A constant as SQL text (strings quoted), for a partial index's predicate.
fn constant(node: Option<&Node>) -> Option<String> {
    let NodeEnum::AConst(c) = node?.node.as_ref()? else {
        return None;
    };
    match c.val.as_ref()? {
        a_const::Val::Sval(s) => Some(format!("'{}'", s.sval.replace('\'', "''"))),
        a_const::Val::Ival(i) => Some(i.ival.to_string()),
        a_const::Val::Boolval(b) => Some(b.boolval.to_string()),
        a_const::Val::Fval(f) => Some(f.fval.clone()),
        a_const::Val::Bsval(_) => None,
    }
}

/// `to_tsvector(…) @@ q`: the left side as an index expression, qualifiers removed.
fn text_search(left: Option<&Node>, level: &mut Level) {
    let Some(left) = left else {
        return;
    };
    if let Some((q, col)) = column(Some(left)) {
        // A stored tsvector column: plain GIN on it.
        level.uses.push(use_of(q, col, Use::Contain));
        return;
    }
    let mut expr = left.clone();
    let mut first = None;
    unqualify(&mut expr, &mut first);
    let (Some(first), Some(text)) = (first, deparse_expr(expr)) else {
        return;
    };
    level.text_search.push((text, first));
}

/// Strips table qualifiers from every column in `node`, remembering the first column.
fn unqualify(node: &mut Node, first: &mut Option<ColUse>) {
    let Some(n) = node.node.as_mut() else {
        return;
    };
    match n {
        NodeEnum::ColumnRef(c) => {
            if first.is_none() {
                if let Some((q, col)) = column(Some(&Node {
                    node: Some(NodeEnum::ColumnRef(c.clone())),
                })) {
                    *first = Some(use_of(q, col, Use::Contain));
                }
            }
            if c.fields.len() > 1 {
                c.fields.drain(..c.fields.len() - 1);
            }
        }
        NodeEnum::FuncCall(f) => f.args.iter_mut().for_each(|a| unqualify(a, first)),
        NodeEnum::AExpr(e) => {
            for side in [e.lexpr.as_deref_mut(), e.rexpr.as_deref_mut()]
                .into_iter()
                .flatten()
            {
                unqualify(side, first);
            }
        }
        NodeEnum::TypeCast(t) => {
            if let Some(a) = t.arg.as_deref_mut() {
                unqualify(a, first);
            }
        }
        NodeEnum::CoalesceExpr(c) => c.args.iter_mut().for_each(|a| unqualify(a, first)),
        _ => {}
    }
}

/// An expression as SQL: put in place of `1` in `SELECT 1`, deparsed, prefix removed.
fn deparse_expr(expr: Node) -> Option<String> {
    let mut template = pg_query::parse("SELECT 1", 0).ok()?.protobuf;
    let stmt = template.stmts.first_mut()?.stmt.as_deref_mut()?;
    let Some(NodeEnum::SelectStmt(s)) = stmt.node.as_mut() else {
        return None;
    };
    let Some(NodeEnum::ResTarget(rt)) = s.target_list.first_mut()?.node.as_mut() else {
        return None;
    };
    rt.val = Some(Box::new(expr));
    let sql = pg_query::deparse(&template, pg_query::DeparseOptions::default()).ok()?;
    sql.strip_prefix("SELECT ").map(str::to_string)
}

#[cfg(test)]
#[path = "tree_tests.rs"]
mod tests;
