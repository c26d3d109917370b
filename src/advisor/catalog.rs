//! Catalog reads on a side connection: the columns and valid indexes of the tables the
//! sampled statements name, and which extensions (HypoPG, pg_trgm) the database has.

use std::collections::{BTreeSet, HashMap};

use tokio_postgres::Client;

use super::candidates::{Catalog, Method};

const COLUMNS: &str = "SELECT a.attname::text, pg_catalog.format_type(a.atttypid, a.atttypmod)
    FROM pg_catalog.pg_attribute a
    WHERE a.attrelid = pg_catalog.to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped";

/// Key columns by name (expressions left out), method and predicate of each valid index.
const INDEXES: &str = "SELECT am.amname::text,
        ARRAY(SELECT a.attname::text
              FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
              JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
              WHERE k.n <= i.indnkeyatts ORDER BY k.n),
        pg_catalog.pg_get_expr(i.indpred, i.indrelid),
        c.relname::text
    FROM pg_catalog.pg_index i
    JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
    JOIN pg_catalog.pg_am am ON am.oid = c.relam
    WHERE i.indrelid = pg_catalog.to_regclass($1) AND i.indisvalid";

/// Which of `names` are installed.
pub async fn extensions(client: &Client) -> Result<(bool, bool), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'hypopg'),
                    EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'pg_trgm')",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// An existing index: (table as written, name, method, key columns, predicate).
pub type Existing = (String, String, Method, Vec<String>, Option<String>);

pub async fn load(
    client: &Client,
    tables: &BTreeSet<String>,
    has_trgm: bool,
) -> Result<(Catalog, Vec<Existing>), tokio_postgres::Error> {
    let mut catalog = Catalog {
        has_trgm,
        ..Catalog::default()
    };
    let mut existing = Vec::new();
    for table in tables {
        let mut cols = HashMap::new();
        for row in client.query(COLUMNS, &[table]).await? {
            cols.insert(row.get::<_, String>(0), row.get::<_, String>(1));
        }
        if cols.is_empty() {
            continue;
        }
        catalog.columns.insert(table.clone(), cols);
        for row in client.query(INDEXES, &[table]).await? {
            let method = match row.get::<_, String>(0).as_str() {
                "btree" => Method::Btree,
                "gin" => Method::Gin,
                _ => continue,
            };
            let keys: Vec<String> = row.get(1);
            let pred: Option<String> = row.get(2);
            catalog
                .indexes
                .push((table.clone(), method, keys.clone(), pred.clone()));
            existing.push((table.clone(), row.get(3), method, keys, pred));
        }
    }
    Ok((catalog, existing))
}
