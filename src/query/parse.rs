//! The expensive path: one statement through pg_query (summary, fingerprint, normalize)
//! turned into a command type and the tables read and written.
//!
//! Must run on a thread with a large stack: see `worker`, the only caller.

use pg_query::protobuf::summary_result::Context;
use pg_query::NodeEnum;

use super::fallback::scrub_literals;
use super::Command;

/// What pg_query made of a statement.
#[derive(Debug)]
pub(crate) struct Parsed {
    pub fingerprint: u64,
    pub normalized: String,
    pub command: Command,
    pub tables_read: Vec<String>,
    pub tables_written: Vec<String>,
}

/// Analyzes `sql` with pg_query; `None` when it cannot parse it.
///
/// `summary` rather than `parse` gives the tables: it extracts them in C, where the tree
/// walk checks the stack depth, instead of decoding the whole tree through protobuf
/// (whose decoder refuses trees nested more than 100 messages deep, which
/// `a + b + ... ` with 50 terms already is).
pub(crate) fn analyze(sql: &str) -> Option<Parsed> {
    let summary = pg_query::summary(sql, 0, -1).ok()?;
    // Fingerprinting cuts the tree off at 100 levels, so it needs no depth check.
    let fingerprint = pg_query::fingerprint(sql, 0, 0).ok()?.value;
    let normalized = scrub_literals(&pg_query::normalize(sql).ok()?);

    let mut read = Vec::new();
    let mut written = Vec::new();
    let mut ddl = false;
    for table in &summary.tables {
        match table.context {
            Context::Dml => written.push(table.name.clone()),
            Context::Ddl => {
                ddl = true;
                written.push(table.name.clone());
            }
            _ => read.push(table.name.clone()),
        }
    }
    // Walk order puts the top-level statement first; nested ones (the SELECT of an
    // INSERT ... SELECT, a data-modifying WITH) follow.
    let top = summary.statement_types.first().map_or("", String::as_str);
    let command = match top {
        // SELECT ... INTO creates its target, which summary reports in DDL context.
        "SelectStmt" if ddl => Command::Ddl,
        other => command_for(other),
    };
    if command == Command::Copy && copy_is_from(sql) {
        // COPY t FROM: summary reports the relation as read whatever the direction.
        written.append(&mut read);
    }
    Some(Parsed {
        fingerprint,
        normalized,
        command,
        tables_read: sorted(read),
        tables_written: sorted(written),
    })
}

fn sorted(mut names: Vec<String>) -> Vec<String> {
    names.sort_unstable();
    names.dedup();
    names
}

/// Command type of a top-level parse node, by its name. Follows PostgreSQL's own
/// `log_statement = ddl` split (GetCommandLogLevel), except TRUNCATE counts as DDL.
fn command_for(node: &str) -> Command {
    match node {
        "SelectStmt" => Command::Select,
        "InsertStmt" => Command::Insert,
        "UpdateStmt" | "MergeStmt" => Command::Update,
        "DeleteStmt" => Command::Delete,
        "CopyStmt" => Command::Copy,
        "TransactionStmt" => Command::Transaction,
        "TruncateStmt"
        | "IndexStmt"
        | "ViewStmt"
        | "RuleStmt"
        | "CommentStmt"
        | "SecLabelStmt"
        | "GrantStmt"
        | "GrantRoleStmt"
        | "RenameStmt"
        | "DefineStmt"
        | "CompositeTypeStmt"
        | "ClusterStmt"
        | "RefreshMatViewStmt"
        | "ImportForeignSchemaStmt"
        | "ReassignOwnedStmt" => Command::Ddl,
        n if n.starts_with("Create") || n.starts_with("Alter") || n.starts_with("Drop") => {
            Command::Ddl
        }
        _ => Command::Utility,
    }
}

/// Whether a COPY statement loads into a table. Only the relation form can (COPY (query)
/// is always TO), and its tree is shallow enough for the protobuf decoder; a failure to
/// decode counts as TO.
fn copy_is_from(sql: &str) -> bool {
    let Ok(tree) = pg_query::parse(sql, 0) else {
        return false;
    };
    let first = tree.protobuf.stmts.first();
    match first
        .and_then(|raw| raw.stmt.as_ref())
        .and_then(|n| n.node.as_ref())
    {
        Some(NodeEnum::CopyStmt(copy)) => copy.is_from && copy.relation.is_some(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names_map_to_commands() {
        for (node, cmd) in [
            ("SelectStmt", Command::Select),
            ("MergeStmt", Command::Update),
            ("CreateTableAsStmt", Command::Ddl),
            ("AlterSystemStmt", Command::Ddl),
            ("DropdbStmt", Command::Ddl),
            ("TruncateStmt", Command::Ddl),
            ("VacuumStmt", Command::Utility),
            ("ExplainStmt", Command::Utility),
            ("", Command::Utility),
        ] {
            assert_eq!(command_for(node), cmd, "{node}");
        }
    }
}
