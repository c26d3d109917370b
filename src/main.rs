//! The `pgsidecar` binary: command line, logging, start, signals, drain.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use pgsidecar::config::{AuthType, Config, LogFormat, Overrides, PoolMode};
use pgsidecar::{App, ConfigSource};
use tokio::signal::unix::{signal, SignalKind};

/// A transparent PostgreSQL proxy: pooling, per-query statistics, slow-query capture.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    opts: Opts,
}

#[derive(clap::Args, Debug, Clone)]
struct Opts {
    /// Configuration file (TOML); flags below override it. Each flag can also be given
    /// as an environment variable (PGSIDECAR_CONFIG, PGSIDECAR_LISTEN, ...), as the
    /// container image does.
    #[arg(long, global = true, env = "PGSIDECAR_CONFIG")]
    config: Option<PathBuf>,
    /// Address clients connect to [default: 127.0.0.1:6432].
    #[arg(long, global = true, env = "PGSIDECAR_LISTEN")]
    listen: Option<String>,
    /// The PostgreSQL server URL; also read from PGSIDECAR_UPSTREAM or DATABASE_URL.
    #[arg(long, global = true, env = "PGSIDECAR_UPSTREAM")]
    upstream: Option<String>,
    /// Pool mode [default: transaction].
    #[arg(long, global = true, value_enum, env = "PGSIDECAR_POOL_MODE")]
    pool_mode: Option<PoolMode>,
    /// Server connections per (database, user) pool [default: 20].
    #[arg(long, global = true, env = "PGSIDECAR_POOL_SIZE")]
    pool_size: Option<usize>,
    /// Admin HTTP address [default: 127.0.0.1:9930].
    #[arg(long, global = true, env = "PGSIDECAR_ADMIN_LISTEN")]
    admin_listen: Option<String>,
    /// How clients log in [default: auto: passthrough (the server checks each client's
    /// own credentials) unless [[users]] or auth_query are configured].
    #[arg(long, global = true, value_enum)]
    auth_type: Option<AuthType>,
    /// Users allowed into the SQL admin console, comma separated.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        env = "PGSIDECAR_ADMIN_USERS"
    )]
    admin_users: Option<Vec<String>>,
    /// Log format [default: text].
    #[arg(long, global = true, value_parser = ["text", "json"], env = "PGSIDECAR_LOG_FORMAT")]
    log_format: Option<String>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Validate the configuration and print the effective settings.
    CheckConfig,
    /// Apply the store's migrations (schema `pgsidecar`) to `store_url` (default: the
    /// upstream) and exit.
    Migrate,
    /// Exit 0 when this configuration's admin server answers `GET /healthz` with 200
    /// within 2 s, else 1 (the container image's HEALTHCHECK: it has no shell or curl).
    Healthcheck,
    /// Print index advice from the running proxy (its admin_listen): CREATE INDEX
    /// CONCURRENTLY suggestions with reasons and evidence, then DROP INDEX CONCURRENTLY
    /// candidates. Runs a pass first unless --no-run. Nothing is created or dropped.
    Advise {
        /// Print the last pass instead of running a new one.
        #[arg(long)]
        no_run: bool,
    },
    /// The result cache's invalidation triggers: `cache install` or `cache uninstall`.
    #[command(subcommand)]
    Cache(pgsidecar::cache::cli::CacheCli),
}

impl Opts {
    fn overrides(&self) -> Overrides {
        let upstream = self
            .upstream
            .clone()
            .or_else(|| std::env::var("DATABASE_URL").ok().filter(|u| !u.is_empty()));
        Overrides {
            listen: self.listen.clone(),
            upstream,
            pool_mode: self.pool_mode,
            pool_size: self.pool_size,
            admin_listen: self.admin_listen.clone(),
            admin_users: self.admin_users.clone(),
            auth_type: self.auth_type,
            log_format: self.log_format.as_deref().map(|f| match f {
                "json" => LogFormat::Json,
                _ => LogFormat::Text,
            }),
        }
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let source = ConfigSource {
        path: cli.opts.config.clone(),
        overrides: cli.opts.overrides(),
    };
    let loaded = Config::load(source.path.as_deref(), &source.overrides)
        .and_then(|c| pgsidecar::tls::check(&c).map(|()| c));
    let config = match loaded {
        Ok(c) => c,
        Err(e) => {
            eprintln!("pgsidecar: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(Command::CheckConfig) = cli.command {
        print!("{}", config.to_display_toml());
        return std::process::ExitCode::SUCCESS;
    }
    if let Some(Command::Healthcheck) = cli.command {
        return healthcheck(&config.admin_listen);
    }
    if let Some(Command::Advise { no_run }) = cli.command {
        return advise(&config, !no_run);
    }
    if let Some(Command::Cache(action)) = &cli.command {
        return pgsidecar::cache::cli::run(&config, action);
    }
    init_tracing(config.log_format);
    if let Some(Command::Migrate) = cli.command {
        return migrate(&config);
    }
    let runtime = match config.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if n > 1 {
                builder.worker_threads(n);
            }
            builder.enable_all().build()
        }
    }
    .expect("tokio runtime");
    match runtime.block_on(serve(config, source)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("pgsidecar: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `pgsidecar migrate`: one line per applied migration, or that none was needed.
fn migrate(config: &Config) -> std::process::ExitCode {
    let url = config.store_url.as_deref().unwrap_or(&config.upstream);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(pgsidecar::store::migrate(url)) {
        Ok(applied) if applied.is_empty() => {
            println!("pgsidecar: store schema is up to date");
            std::process::ExitCode::SUCCESS
        }
        Ok(applied) => {
            for version in applied {
                println!("pgsidecar: applied migration {version}");
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgsidecar: migrate: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `pgsidecar advise`: the advice as SQL on stdout, errors on stderr (exit 1).
fn advise(config: &Config, run: bool) -> std::process::ExitCode {
    match pgsidecar::advisor::cli::advise(config, run) {
        Ok(text) => {
            print!("{text}");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("pgsidecar: advise: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// `pgsidecar healthcheck`: one plain HTTP/1.0 request to the admin server; an
/// unspecified listen address (0.0.0.0, [::]) is reached over loopback.
fn healthcheck(admin_listen: &str) -> std::process::ExitCode {
    use std::io::{Read, Write};
    use std::net::{SocketAddr, TcpStream};
    use std::time::Duration;
    let limit = Duration::from_secs(2);
    let check = || -> std::io::Result<bool> {
        let mut addr: SocketAddr = admin_listen.parse().map_err(std::io::Error::other)?;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        let mut stream = TcpStream::connect_timeout(&addr, limit)?;
        stream.set_read_timeout(Some(limit))?;
        stream.set_write_timeout(Some(limit))?;
        stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && &head[8..12] == b" 200")
    };
    match check() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("pgsidecar: healthcheck: {admin_listen} answered /healthz without 200");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("pgsidecar: healthcheck: {admin_listen}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        // JSON escapes newlines itself and never colours.
        LogFormat::Json => builder.json().with_writer(std::io::stderr).init(),
        LogFormat::Text => builder
            .with_ansi(pgsidecar::logfmt::ansi())
            .with_writer(pgsidecar::logfmt::OneLineStderr)
            .init(),
    }
}

/// Runs until SIGTERM/SIGINT (graceful; a second one forces), reloading on SIGHUP.
async fn serve(config: Config, source: ConfigSource) -> anyhow::Result<()> {
    let app = App::start(config, source)
        .await
        .context("start-up failed")?;
    let shared = app.shared().clone();
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            // SHUTDOWN from the admin console.
            _ = shared.shutdown.cancelled() => break,
            _ = hup.recv() => {
                if let Err(e) = shared.reload() {
                    tracing::error!(error = %e, "reload failed; keeping the running configuration");
                }
            }
        }
    }
    tracing::info!("stop signal: draining, open transactions may finish");
    app.begin_shutdown();
    let mut waiter = tokio::spawn(app.wait());
    tokio::select! {
        _ = &mut waiter => return Ok(()),
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::warn!("second stop signal: closing all clients now");
    shared.close_all();
    let _ = waiter.await;
    Ok(())
}
