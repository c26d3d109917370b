//! `pgsidecar cache install|uninstall [--database DB]`: the invalidation triggers,
//! installed into (or removed from) one database as the upstream URL's user, which must
//! be allowed to create event triggers (a superuser).

use std::process::ExitCode;

use crate::config::{Config, Upstream};

/// The `cache` subcommand's actions.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum CacheCli {
    /// Add the NOTIFY triggers on every table and the DDL event triggers (idempotent).
    Install {
        /// The database as clients name it [default: the upstream URL's].
        #[arg(long)]
        database: Option<String>,
    },
    /// Remove everything `install` added.
    Uninstall {
        #[arg(long)]
        database: Option<String>,
    },
}

/// Runs the action and prints what happened; exit 1 on failure, 2 on a bad upstream.
pub fn run(config: &Config, action: &CacheCli) -> ExitCode {
    let upstream = match Upstream::parse(&config.upstream) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("pgsidecar: config key upstream: {e}");
            return ExitCode::from(2);
        }
    };
    let (database, install) = match action {
        CacheCli::Install { database } => (database, true),
        CacheCli::Uninstall { database } => (database, false),
    };
    let database = database.clone().unwrap_or_else(|| upstream.dbname.clone());
    let settings = config.pool_settings(&upstream, &database);
    let pg = super::conn::target(
        &settings.host,
        settings.port,
        &settings.server_dbname,
        &upstream.user,
        upstream.password.as_deref(),
        config.server_connect_timeout,
    );
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pgsidecar: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(super::install::run(&pg, install)) {
        Ok(message) => {
            println!("{message}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgsidecar: {e}");
            ExitCode::FAILURE
        }
    }
}
