//! Calls to the configured upstream providers. API keys come from the
//! environment and are only ever put in the outgoing headers.

use super::config::{Config, ProviderConfig};
use axum::http::HeaderMap;
use bytes::Bytes;
use shadowgate_core::Protocol;
use std::collections::HashMap;
use std::time::Duration;

/// Why the upstream could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Connect failure or timeout.
    #[error("upstream {provider} is unreachable: {reason}")]
    Unreachable {
        /// Provider name.
        provider: String,
        /// What happened.
        reason: String,
    },
}

/// The HTTP client and the providers' keys.
pub struct Upstream {
    client: reqwest::Client,
    keys: HashMap<String, String>,
}

impl Upstream {
    /// Builds the client; a provider whose `api_key_env` is unset is a start-up error naming the key.
    pub fn new(cfg: &Config) -> anyhow::Result<Upstream> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.upstream.connect_timeout_ms))
            .read_timeout(Duration::from_millis(cfg.upstream.idle_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()?;
        let mut keys = HashMap::new();
        for (i, p) in cfg.providers.iter().enumerate() {
            if let Some(var) = &p.api_key_env {
                let key = std::env::var(var).map_err(|_| {
                    anyhow::anyhow!("providers[{i}].api_key_env: environment variable {var} is not set")
                })?;
                keys.insert(p.name.clone(), key);
            }
        }
        Ok(Upstream { client, keys })
    }

    /// Sends a converted request to `provider`.
    pub async fn send(
        &self,
        provider: &ProviderConfig,
        protocol: Protocol,
        body: Bytes,
        pass: &HeaderMap,
        stream: bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        let path = match protocol {
            Protocol::OpenAiChat => "/chat/completions",
            Protocol::AnthropicMessages => "/messages",
        };
        let url = format!("{}{path}", provider.base_url.trim_end_matches('/'));
        let mut req = self.client.post(url).header("content-type", "application/json").body(body);
        if stream {
            req = req.header("accept", "text/event-stream");
        }
        if let Some(key) = self.keys.get(&provider.name) {
            req = match protocol {
                Protocol::OpenAiChat => req.bearer_auth(key),
                Protocol::AnthropicMessages => req.header("x-api-key", key),
            };
        }
        if protocol == Protocol::AnthropicMessages && !pass.contains_key("anthropic-version") {
            req = req.header("anthropic-version", "2023-06-01");
        }
        for (k, v) in pass {
            req = req.header(k, v);
        }
        req.send()
            .await
            .map_err(|e| UpstreamError::Unreachable { provider: provider.name.clone(), reason: without_url(&e) })
    }
}

/// A reqwest error's message without the URL (which may carry credentials in some setups).
pub fn without_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "broken response body"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() { kind.to_string() } else { format!("{kind} ({detail})") }
}
