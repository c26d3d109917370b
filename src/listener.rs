//! The accept loop: one session task per client connection, until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::app::Shared;

/// Accepts clients until `shared.shutdown` fires. Accept errors (such as running out of
/// file descriptors) are logged and retried after a short pause instead of ending the
/// proxy.
pub async fn run(listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(%peer, error = %e, "could not set TCP_NODELAY");
                }
                let console = crate::console::ENTRY;
                tracker.spawn(crate::session::run(shared.clone(), stream, peer, console));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    tracing::info!("stopped accepting new clients");
}

/// Accepts clients on a Unix socket (`listen_unix_dir`) until shutdown, then removes the
/// socket file so that a later start can bind it again.
pub async fn run_unix(
    listener: tokio::net::UnixListener,
    path: std::path::PathBuf,
    shared: Arc<Shared>,
    tracker: TaskTracker,
) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => {
                let console = crate::console::ENTRY;
                tracker.spawn(crate::session::run_unix(shared.clone(), stream, console));
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept on the Unix socket failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let _ = std::fs::remove_file(&path);
    tracing::info!(path = %path.display(), "stopped accepting clients on the Unix socket");
}

/// Binds `<dir>/.s.PGSQL.<port>` (the name libpq expects with `host=<dir>`), replacing a
/// socket file left by a process that is gone, and lets any local user connect to it, as
/// PostgreSQL does by default (authentication still applies).
pub fn bind_unix(
    dir: &str,
    port: u16,
) -> std::io::Result<(tokio::net::UnixListener, std::path::PathBuf)> {
    use std::os::unix::fs::PermissionsExt;
    let path = crate::tls::unix_socket_path(dir, port);
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("{} is in use by another process", path.display()),
            ));
        }
        std::fs::remove_file(&path)?;
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))?;
    Ok((listener, path))
}

/// The sockets the proxy listens on.
pub(crate) struct Listeners {
    pub(crate) tcp: TcpListener,
    pub(crate) local_addr: std::net::SocketAddr,
    pub(crate) unix: Option<(tokio::net::UnixListener, std::path::PathBuf)>,
    pub(crate) admin: Option<TcpListener>,
}

impl Listeners {
    pub(crate) async fn bind(
        config: &crate::config::Config,
    ) -> Result<Listeners, crate::app::AppError> {
        let bind_error = |source| crate::app::AppError::Bind {
            address: config.listen.clone(),
            source,
        };
        let tcp = TcpListener::bind(&config.listen)
            .await
            .map_err(bind_error)?;
        let local_addr = tcp.local_addr().map_err(bind_error)?;
        let unix = match &config.listen_unix_dir {
            Some(dir) => Some(crate::listener::bind_unix(dir, local_addr.port()).map_err(
                |source| {
                    crate::app::AppError::Bind {
                        address: crate::tls::unix_socket_path(dir, local_addr.port())
                            .display()
                            .to_string(),
                        source,
                    }
                },
            )?),
            None => None,
        };
        let admin = bind_admin(&config.admin_listen).await;
        Ok(Listeners {
            tcp,
            local_addr,
            unix,
            admin,
        })
    }
}

/// Binds the admin HTTP listener. A failure is logged and the proxy runs without it:
/// the admin server is auxiliary and must not keep clients from being served.
async fn bind_admin(address: &str) -> Option<TcpListener> {
    match TcpListener::bind(address).await {
        Ok(listener) => Some(listener),
        Err(e) => {
            tracing::warn!(address, error = %e, "cannot listen for the admin HTTP server; running without it");
            None
        }
    }
}
