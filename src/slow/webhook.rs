//! Alert delivery to `alert_webhook_url`: one JSON body that Slack (`text`) and
//! Alertmanager-style receivers (`labels`, `annotations`, `startsAt`) both understand.

use std::time::Duration;

use serde_json::{json, Value};

use crate::store::{rfc3339_ms, Alert};

/// How long one POST may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// The body posted for `alert`, raised by sidecar `sidecar`.
pub fn body(alert: &Alert, sidecar: &str) -> Value {
    let summary = format!(
        "pgsidecar: {} slow query on {} ({} in a row, last {:.0} ms): {}",
        alert.level,
        alert.database,
        alert.consecutive,
        alert.duration_ms,
        truncate(&alert.query, 300)
    );
    json!({
        "text": summary,
        "status": "firing",
        "startsAt": rfc3339_ms(alert.at),
        "labels": {
            "alertname": "PgsidecarSlowQuery",
            "severity": alert.level,
            "database": alert.database,
            "user": alert.username,
            "fingerprint": alert.fingerprint,
            "sidecar": sidecar,
        },
        "annotations": {
            "summary": summary,
            "query": alert.query,
            "duration_ms": alert.duration_ms,
            "consecutive": alert.consecutive,
        },
        "alert": alert,
    })
}

/// Posts `body` once. Any answer outside 2xx is a failure, with its status in the text.
pub async fn post(client: &reqwest::Client, url: &str, body: &Value) -> Result<(), String> {
    // Errors are logged and stored with the job: never with the URL's secret parts.
    let shown = crate::config::redact_webhook_url(url);
    let answer = client
        .post(url)
        .timeout(TIMEOUT)
        .json(body)
        .send()
        .await
        .map_err(|e| format!("POST {shown} failed: {}", e.without_url()))?;
    let status = answer.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("POST {shown} answered {status}"))
    }
}

/// Posts with retries (1 s, 2 s between attempts), for when there is no store whose
/// jobs would retry. Returns the last error after `attempts` failures.
pub async fn post_with_retries(
    client: &reqwest::Client,
    url: &str,
    body: &Value,
    attempts: u32,
) -> Result<(), String> {
    let mut delay = Duration::from_secs(1);
    let mut last = String::new();
    for attempt in 1..=attempts.max(1) {
        match post(client, url, body).await {
            Ok(()) => return Ok(()),
            Err(e) => {
                tracing::warn!(attempt, error = %e, "alert webhook delivery failed");
                last = e;
            }
        }
        if attempt < attempts {
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
    }
    Err(last)
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((i, _)) => &text[..i],
        None => text,
    }
}
