//! `pgsidecar cache install` / `uninstall` (CLI and console `CACHE INSTALL` /
//! `CACHE UNINSTALL`): statement-level `AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE`
//! triggers on every permanent table that NOTIFY the table's OID, and event triggers
//! that cover new tables and NOTIFY on DDL (see `install.sql`). Both are idempotent;
//! install runs in one transaction, so a failure leaves nothing half done.

/// The installation script (schema `pgsidecar_cache`, functions, event triggers, one
/// trigger per table).
pub const INSTALL_SQL: &str = include_str!("install.sql");
/// Removes all of it.
pub const UNINSTALL_SQL: &str = include_str!("uninstall.sql");

/// Tables covered after an install.
const COVERED: &str = "SELECT count(*) FROM pg_catalog.pg_trigger \
     WHERE tgname = 'pgsidecar_cache_notify'";

/// Installs into the database `client` is connected to; returns the tables covered.
/// Needs a superuser (event triggers).
pub async fn install(client: &mut tokio_postgres::Client) -> Result<i64, super::CacheError> {
    let sql = |what| move |source| super::CacheError::Sql { what, source };
    let tx = client.transaction().await.map_err(sql("BEGIN"))?;
    tx.batch_execute(INSTALL_SQL)
        .await
        .map_err(sql("install"))?;
    let covered: i64 = tx
        .query_one(COVERED, &[])
        .await
        .map_err(sql("count covered tables"))?
        .get(0);
    tx.commit().await.map_err(sql("COMMIT"))?;
    Ok(covered)
}

/// Removes the triggers, event triggers and schema from `client`'s database.
pub async fn uninstall(client: &mut tokio_postgres::Client) -> Result<(), super::CacheError> {
    let sql = |what| move |source| super::CacheError::Sql { what, source };
    let tx = client.transaction().await.map_err(sql("BEGIN"))?;
    tx.batch_execute(UNINSTALL_SQL)
        .await
        .map_err(sql("uninstall"))?;
    tx.commit().await.map_err(sql("COMMIT"))
}

/// Connects with `pg` and installs (`true`) or uninstalls; the message says what
/// happened, for the CLI and the console.
pub async fn run(
    pg: &tokio_postgres::Config,
    install_it: bool,
) -> Result<String, super::CacheError> {
    let target = super::conn::describe(pg);
    let (mut client, connection) =
        pg.connect(tokio_postgres::NoTls)
            .await
            .map_err(|source| super::CacheError::Connect {
                target: target.clone(),
                source,
            })?;
    let driver = tokio::spawn(connection);
    let done = match install_it {
        true => install(&mut client)
            .await
            .map(|n| format!("cache invalidation installed in {target}: {n} tables covered")),
        false => uninstall(&mut client)
            .await
            .map(|()| format!("cache invalidation removed from {target}")),
    };
    drop(client);
    let _ = driver.await;
    done
}
