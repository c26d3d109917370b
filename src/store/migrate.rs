//! Schema migrations: the SQL files of `migrations/`, compiled into the binary, applied
//! in order, each once, under an advisory lock so that sidecars starting together do not
//! race.

use deadpool_postgres::Object;

use super::{Store, StoreError};

/// One migration file: its version (the file name without `.sql`) and its SQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Migration {
    pub version: &'static str,
    pub sql: &'static str,
}

/// Every file of `migrations/`, in the order they are applied. A unit test checks that
/// this list and the directory agree.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: "0001_init",
        sql: include_str!("../../migrations/0001_init.sql"),
    },
    Migration {
        version: "0002_jobs",
        sql: include_str!("../../migrations/0002_jobs.sql"),
    },
    Migration {
        version: "0003_observability",
        sql: include_str!("../../migrations/0003_observability.sql"),
    },
    Migration {
        version: "0004_advisor",
        sql: include_str!("../../migrations/0004_advisor.sql"),
    },
];

/// Key of the session advisory lock held while migrating: fixed so every sidecar and
/// `pgsidecar migrate` agree on it ("pgsideca" in ASCII). Advisory locks are per
/// database, which is exactly the scope of the schema.
const LOCK_KEY: i64 = 0x7067_7369_6465_6361;

/// Created before anything else: the migrator needs the table to know what to run.
const BOOTSTRAP: &str = "CREATE SCHEMA IF NOT EXISTS pgsidecar;
CREATE TABLE IF NOT EXISTS pgsidecar.schema_migrations (
    version    text PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);";

/// Connects to `url` and applies the missing migrations; the entry point of
/// `pgsidecar migrate`. Returns the versions applied now.
pub async fn migrate(url: &str) -> Result<Vec<String>, StoreError> {
    Store::connect(url, "pgsidecar migrate")
        .await?
        .migrate()
        .await
}

impl Store {
    /// Applies every migration the database has not seen, each in its own transaction,
    /// and returns the versions applied now (empty when the schema is current). Safe to
    /// call from several sidecars at once: they queue on an advisory lock and the later
    /// ones find nothing left to do.
    pub async fn migrate(&self) -> Result<Vec<String>, StoreError> {
        let mut client = self.client().await?;
        client
            .query_one("SELECT pg_advisory_lock($1)", &[&LOCK_KEY])
            .await
            .map_err(StoreError::query("migration lock"))?;
        let result = apply_missing(&mut client).await;
        let unlocked = client
            .query_one("SELECT pg_advisory_unlock($1)", &[&LOCK_KEY])
            .await;
        if let Err(e) = unlocked {
            // A session lock lives as long as its connection: closing this one, rather
            // than returning it to the pool, is what releases the lock now.
            tracing::warn!(error = %e, "store migration unlock failed; dropping the connection");
            drop(Object::take(client));
        }
        result
    }
}

async fn apply_missing(client: &mut Object) -> Result<Vec<String>, StoreError> {
    client
        .batch_execute(BOOTSTRAP)
        .await
        .map_err(StoreError::query("migration bootstrap"))?;
    let applied: Vec<String> = client
        .query("SELECT version FROM pgsidecar.schema_migrations", &[])
        .await
        .map_err(StoreError::query("list applied migrations"))?
        .iter()
        .map(|row| row.get(0))
        .collect();
    let mut now_applied = Vec::new();
    for migration in MIGRATIONS {
        if applied.iter().any(|v| v == migration.version) {
            continue;
        }
        apply(client, migration).await?;
        tracing::info!(version = migration.version, "store migration applied");
        now_applied.push(migration.version.to_string());
    }
    Ok(now_applied)
}

/// Runs one file and records it in the same transaction, so a failure leaves neither.
async fn apply(client: &mut Object, migration: &Migration) -> Result<(), StoreError> {
    let failed = |source| StoreError::Migration {
        version: migration.version,
        source,
    };
    let tx = client.transaction().await.map_err(failed)?;
    tx.batch_execute(migration.sql).await.map_err(failed)?;
    tx.execute(
        "INSERT INTO pgsidecar.schema_migrations (version) VALUES ($1)",
        &[&migration.version],
    )
    .await
    .map_err(failed)?;
    tx.commit().await.map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file added to `migrations/` but not to [`MIGRATIONS`] would never run.
    #[test]
    fn every_migration_file_is_listed_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .expect("migrations/ exists")
            .map(|e| {
                e.expect("readable entry")
                    .file_name()
                    .into_string()
                    .unwrap()
            })
            .filter(|name| name.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<String> = MIGRATIONS
            .iter()
            .map(|m| format!("{}.sql", m.version))
            .collect();
        assert_eq!(files, listed);
        for (i, m) in MIGRATIONS.iter().enumerate() {
            let number = format!("{:04}_", i + 1);
            assert!(
                m.version.starts_with(&number),
                "{} is not numbered {number}",
                m.version
            );
            let on_disk = std::fs::read_to_string(format!("{dir}/{}.sql", m.version)).unwrap();
            assert_eq!(m.sql, on_disk, "{} embeds its own file", m.version);
        }
    }
}
