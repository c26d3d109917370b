//! `pgsidecar advise`: asks the running proxy (its `admin_listen`, with `admin_token`)
//! to run an advisor pass, then prints the result as SQL a human reviews: each
//! `CREATE INDEX CONCURRENTLY …;` with its reason, the fingerprints it serves, the
//! estimated and measured savings and its size, then the `DROP INDEX CONCURRENTLY …;`
//! candidates with their evidence. The samples live in the proxy's memory, so the
//! command needs the proxy; it never creates or drops anything itself.

use std::time::Duration;

use crate::config::Config;

/// Runs the command; the text to print, or why it failed.
pub fn advise(config: &Config, run: bool) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(fetch(config, run))
}

async fn fetch(config: &Config, run: bool) -> Result<String, String> {
    let mut addr: std::net::SocketAddr = config
        .admin_listen
        .parse()
        .map_err(|e| format!("admin_listen {:?}: {e}", config.admin_listen))?;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let base = format!("http://{addr}");
    let client = reqwest::Client::builder()
        .timeout(config.advisor.pass_timeout + Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let auth = |r: reqwest::RequestBuilder| match &config.admin_token {
        Some(t) => r.bearer_auth(t),
        None => r,
    };
    if run {
        let answer = auth(client.post(format!("{base}/api/advice/run")))
            .send()
            .await
            .map_err(|e| format!("cannot reach the proxy's admin server at {base}: {e}"))?;
        check(answer).await?;
    }
    let answer = auth(client.get(format!("{base}/api/advice/script")))
        .send()
        .await
        .map_err(|e| format!("cannot reach the proxy's admin server at {base}: {e}"))?;
    check(answer).await
}

async fn check(answer: reqwest::Response) -> Result<String, String> {
    let status = answer.status();
    let body = answer.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(body)
    } else {
        Err(format!("the proxy answered {status}: {body}"))
    }
}
