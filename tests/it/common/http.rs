//! The admin HTTP server as tests see it: requests with or without the bearer token,
//! and Prometheus text parsed into samples.

use prometheus_parse::{Sample, Scrape, Value};
use serde_json::Value as Json;

use super::Proxy;

/// Requests to one proxy's admin server.
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
    token: Option<String>,
}

impl Http {
    pub fn new(proxy: &Proxy) -> Http {
        let addr = proxy.app.admin_addr().expect("admin server listening");
        Http {
            base: format!("http://{addr}"),
            client: reqwest::Client::new(),
            token: None,
        }
    }

    pub fn with_token(proxy: &Proxy, token: &str) -> Http {
        Http {
            token: Some(token.to_string()),
            ..Http::new(proxy)
        }
    }

    pub async fn text(&self, path: &str) -> (u16, String) {
        let mut request = self.client.get(format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("admin answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("body"))
    }

    pub async fn json(&self, path: &str) -> (u16, Json) {
        let (status, body) = self.text(path).await;
        let json = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
        (status, json)
    }

    /// A 400 whose error message contains `needle`.
    pub async fn rejects(&self, path: &str, needle: &str) {
        let (status, body) = self.json(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.contains(needle), "{path}: {error}");
    }

    /// The parsed `/metrics` answer.
    pub async fn metrics(&self) -> Scrape {
        let (status, text) = self.text("/metrics").await;
        assert_eq!(status, 200, "{text}");
        scrape(&text)
    }
}

pub fn scrape(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

pub fn samples<'a>(scrape: &'a Scrape, name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    let matches = |s: &&Sample| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v));
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(matches)
        .collect()
}

pub fn value(sample: &Sample) -> f64 {
    match &sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{}: not a number: {other:?}", sample.metric),
    }
}

/// The value of the one sample of `name` with `labels`.
pub fn one(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found = samples(scrape, name, labels);
    assert_eq!(found.len(), 1, "{name} {labels:?}: {found:?}");
    value(found[0])
}
