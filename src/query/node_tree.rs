//! Reading PostgreSQL's stored query trees (`pg_node_tree` text: a SQL function's
//! `prosqlbody`, a view's `ev_action`, a policy's `polqual`, a domain check's `conbin`)
//! for every object that executing the tree can run: functions, operators, aggregates,
//! types (input/output functions, domain checks) and relations (views, policies).
//!
//! Default-deny: the tree is resolved by the server, so attribute notation (`s.volfn`),
//! operators, casts and aggregates all appear as OIDs here. A node kind not on the list
//! of kinds whose executable parts are known makes the tree [`NodeRefs::unknown`], and
//! the caller must then assume the worst. Shared by EXPLAIN capture and any later result
//! cache: both need to know that a statement cannot change anything.

use std::collections::BTreeSet;

/// Node kinds (`{LABEL ...}`) whose fields that can run code are all read below.
const KNOWN_NODES: &[&str] = &[
    "QUERY",
    "RANGETBLENTRY",
    "RANGETBLFUNCTION",
    "ALIAS",
    "FROMEXPR",
    "JOINEXPR",
    "RANGETBLREF",
    "TARGETENTRY",
    "VAR",
    "CONST",
    "PARAM",
    "AGGREF",
    "GROUPINGFUNC",
    "WINDOWFUNC",
    "FUNCEXPR",
    "NAMEDARGEXPR",
    "OPEXPR",
    "DISTINCTEXPR",
    "NULLIFEXPR",
    "SCALARARRAYOPEXPR",
    "BOOLEXPR",
    "SUBLINK",
    "FIELDSELECT",
    "RELABELTYPE",
    "COERCEVIAIO",
    "ARRAYCOERCEEXPR",
    "CONVERTROWTYPEEXPR",
    "COLLATEEXPR",
    "CASEEXPR",
    "CASEWHEN",
    "CASETESTEXPR",
    "ARRAYEXPR",
    "ROWEXPR",
    "ROWCOMPAREEXPR",
    "COALESCEEXPR",
    "SQLVALUEFUNCTION",
    "NULLTEST",
    "BOOLEANTEST",
    "COERCETODOMAIN",
    "COERCETODOMAINVALUE",
    "SORTGROUPCLAUSE",
    "GROUPINGSET",
    "WINDOWCLAUSE",
    "COMMONTABLEEXPR",
    "SETOPERATIONSTMT",
];

/// Fields holding a function OID.
const FUNCTION_FIELDS: &[&str] = &[
    "funcid",
    "opfuncid",
    "hashfuncid",
    "negfuncid",
    "aggfnoid",
    "winfnoid",
    "startInRangeFunc",
    "endInRangeFunc",
];

/// Fields holding an operator OID (or a list of them).
const OPERATOR_FIELDS: &[&str] = &["opno", "eqop", "sortop", "opnos"];

/// What a stored tree can execute, by OID. Zero OIDs ("none") are left out.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NodeRefs {
    /// Functions called directly (including aggregates and window functions).
    pub functions: BTreeSet<u32>,
    /// Aggregates and window functions, whose support functions also run.
    pub aggregates: BTreeSet<u32>,
    pub operators: BTreeSet<u32>,
    /// Every type a value in the tree has: input/output functions, domain checks.
    pub types: BTreeSet<u32>,
    /// Relations read (`RANGETBLENTRY :relid`): views and row security run more trees.
    pub relations: BTreeSet<u32>,
    /// The first node kind whose executable parts are not known.
    pub unknown: Option<String>,
}

impl NodeRefs {
    /// Adds what `tree` (a `pg_node_tree` as text) references. Never fails: text it
    /// cannot follow only adds references or marks the tree unknown.
    pub fn scan(&mut self, tree: &str) {
        let tokens = tokens(tree);
        let mut i = 0;
        while i < tokens.len() {
            let token = tokens[i];
            i += 1;
            if let Some(label) = token.strip_prefix('{') {
                if !KNOWN_NODES.contains(&label) && self.unknown.is_none() {
                    self.unknown = Some(label.to_string());
                }
                continue;
            }
            let Some(field) = token.strip_prefix(':') else {
                continue;
            };
            let values = field_values(&tokens[i..]);
            self.note(field, &values);
        }
    }

    fn note(&mut self, field: &str, values: &[u32]) {
        let values = values.iter().copied().filter(|&v| v != 0);
        if FUNCTION_FIELDS.contains(&field) {
            if matches!(field, "aggfnoid" | "winfnoid") {
                self.aggregates.extend(values.clone());
            }
            self.functions.extend(values);
        } else if OPERATOR_FIELDS.contains(&field) {
            self.operators.extend(values);
        } else if field == "relid" {
            self.relations.extend(values);
        } else if is_type_field(field) {
            self.types.extend(values);
        }
    }
}

/// `consttype`, `resulttype`, `vartype`, `aggargtypes`, `coltypes`, ... (not `typmod`s).
fn is_type_field(field: &str) -> bool {
    /// Enumerations, not OIDs, despite their names.
    const KINDS: [&str; 6] = [
        "commandtype",
        "jointype",
        "sublinktype",
        "nulltesttype",
        "booltesttype",
        "cmdtype",
    ];
    let lower = field.to_ascii_lowercase();
    (lower.ends_with("type") || lower.ends_with("types") || lower.ends_with("typeid"))
        && !lower.contains("typmod")
        && !KINDS.contains(&lower.as_str())
}

/// The OIDs of a field's value: one number, or a list `(o 1 2)`; nothing otherwise.
fn field_values(rest: &[&str]) -> Vec<u32> {
    match rest.first() {
        Some(&"(") => rest[1..]
            .iter()
            .take_while(|t| **t != ")")
            .filter_map(|t| t.parse().ok())
            .collect(),
        Some(t) => t.parse().ok().into_iter().collect(),
        None => Vec::new(),
    }
}

/// Splits node text into tokens: `{LABEL`, `}`, `(`, `)`, `:field` and values.
/// A backslash escapes the next character and quoted strings are one token, so names
/// and string contents never look like fields or nodes.
fn tokens(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if matches!(b, b'}' | b'(' | b')') {
            out.push(&text[i..i + 1]);
            i += 1;
            continue;
        }
        let start = i;
        let mut quoted = false;
        if b == b'{' {
            i += 1;
        }
        while i < bytes.len() {
            let c = bytes[i];
            if c == b'\\' {
                i += 2;
                continue;
            }
            if c == b'"' {
                quoted = !quoted;
            } else if !quoted && (c.is_ascii_whitespace() || matches!(c, b'{' | b'}' | b'(' | b')'))
            {
                break;
            }
            i += 1;
        }
        let end = i.min(bytes.len());
        out.push(text.get(start..end).unwrap_or(""));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(tree: &str) -> NodeRefs {
        let mut refs = NodeRefs::default();
        refs.scan(tree);
        refs
    }

    #[test]
    fn reads_functions_operators_types_and_relations() {
        let tree = "({QUERY :commandType 1 :rtable ({RANGETBLENTRY :alias <> :eref {ALIAS \
            :aliasname s :colnames (\"a\" \":funcid 9\")} :rtekind 0 :relid 16415 :relkind r}) \
            :jointree {FROMEXPR :fromlist ({RANGETBLREF :rtindex 1}) :quals {OPEXPR :opno 96 \
            :opfuncid 65 :opresulttype 16 :args ({VAR :varno 1 :vartype 23 :vartypmod -1} \
            {PARAM :paramid 1 :paramtype 23})}} :targetList ({TARGETENTRY :expr {AGGREF \
            :aggfnoid 2803 :aggtype 20 :aggargtypes (o 23)} :resname a\\ \\:funcid\\ 7} \
            {TARGETENTRY :expr {FUNCEXPR :funcid 1598 :funcresulttype 701 :args <>}}) \
            :sortClause ({SORTGROUPCLAUSE :eqop 98 :sortop 664}) :rowCompare {ROWCOMPAREEXPR \
            :opnos (o 97 521)} :constvalue 6 [ 24 0 0 0 122 37 ]})";
        let refs = scan(tree);
        assert_eq!(refs.unknown, None);
        assert_eq!(
            refs.functions.into_iter().collect::<Vec<_>>(),
            [65, 1598, 2803]
        );
        assert_eq!(refs.aggregates.into_iter().collect::<Vec<_>>(), [2803]);
        assert_eq!(
            refs.operators.into_iter().collect::<Vec<_>>(),
            [96, 97, 98, 521, 664]
        );
        assert_eq!(
            refs.types.into_iter().collect::<Vec<_>>(),
            [16, 20, 23, 701]
        );
        assert_eq!(refs.relations.into_iter().collect::<Vec<_>>(), [16415]);
    }

    #[test]
    fn unknown_nodes_are_reported() {
        let refs = scan("({QUERY :targetList ({TARGETENTRY :expr {NEXTVALUEEXPR :seqid 5}})})");
        assert_eq!(refs.unknown.as_deref(), Some("NEXTVALUEEXPR"));
        // An escaped brace inside a name is not a node.
        let refs = scan("({QUERY :resname a\\{NEXTVALUEEXPR})");
        assert_eq!(refs.unknown, None);
    }

    #[test]
    fn any_text_is_scanned_without_panicking() {
        for text in [
            "",
            "{",
            "\\",
            ":funcid",
            ":opnos (",
            "\"unterminated",
            "{QUERY :relid x}",
        ] {
            scan(text);
        }
    }
}
