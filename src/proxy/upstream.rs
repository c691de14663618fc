//! Calls to the configured upstream providers. API keys come from the
//! environment and are only ever put in the outgoing headers.

use super::ServeError;
use super::config::Config;
use crate::toml_error::Invalid;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
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

/// The HTTP client and, per provider, its endpoint and credentials header
/// (built once at start, not per request).
pub struct Upstream {
    client: reqwest::Client,
    endpoints: HashMap<String, Endpoint>,
}

/// Where one provider's requests go and how each of its keys authenticates.
struct Endpoint {
    url: reqwest::Url,
    /// The credentials header per key name, marked sensitive (never logged).
    auth: HashMap<String, (HeaderName, HeaderValue)>,
}

/// The request path of a protocol, under the provider's base URL.
fn path(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::OpenAiChat => "/chat/completions",
        Protocol::AnthropicMessages => "/messages",
        Protocol::OpenAiResponses => "/responses",
        // The model and method follow (see `Upstream::send`).
        Protocol::Gemini => "/models/",
    }
}

impl Upstream {
    /// Builds the client; a provider whose `api_key_env` is unset is a start-up error naming the key.
    pub fn new(cfg: &Config) -> Result<Upstream, ServeError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.upstream.connect_timeout_ms))
            .read_timeout(Duration::from_millis(cfg.upstream.idle_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|e| ServeError::config("upstream", format!("cannot build the HTTP client: {e}")))?;
        let mut endpoints = HashMap::new();
        for (i, p) in cfg.providers.iter().enumerate() {
            let url = format!("{}{}", p.base_url.trim_end_matches('/'), path(p.protocol));
            let url = reqwest::Url::parse(&url)
                .map_err(|e| ServeError::config(format!("providers[{i}].base_url"), format!("{url:?}: {e}")))?;
            let mut auth = HashMap::new();
            let vars: Vec<(String, String)> = match (&p.api_key_env, p.api_key_envs.is_empty()) {
                (Some(var), _) => vec![(format!("providers[{i}].api_key_env"), var.clone())],
                (None, false) => p
                    .api_key_envs
                    .iter()
                    .enumerate()
                    .map(|(k, c)| (format!("providers[{i}].api_key_envs[{k}].env"), c.env.clone()))
                    .collect(),
                (None, true) => Vec::new(),
            };
            for (at, var) in vars {
                let key = std::env::var(&var)
                    .map_err(|_| ServeError::config(at.clone(), format!("environment variable {var} is not set")))?;
                let (name, value) = match p.protocol {
                    Protocol::OpenAiChat | Protocol::OpenAiResponses => {
                        (header::AUTHORIZATION, format!("Bearer {key}"))
                    }
                    Protocol::Gemini => (HeaderName::from_static("x-goog-api-key"), key),
                    Protocol::AnthropicMessages => (HeaderName::from_static("x-api-key"), key),
                };
                let mut value = HeaderValue::from_str(&value).map_err(|_| {
                    ServeError::config(at.clone(), format!("the key in {var} is not a valid header value"))
                })?;
                value.set_sensitive(true);
                auth.insert(var, (name, value));
            }
            endpoints.insert(p.name.clone(), Endpoint { url, auth });
        }
        Ok(Upstream { client, endpoints })
    }

    /// Sends a converted request to `provider` with its key `key` (by name);
    /// `model` names the upstream model (a Gemini URL carries it:
    /// `…/models/{model}:generateContent`).
    #[allow(clippy::too_many_arguments)]
    pub async fn send(
        &self,
        provider: &ProviderConfig,
        key: &str,
        protocol: Protocol,
        model: &str,
        body: Bytes,
        pass: &HeaderMap,
        stream: bool,
    ) -> Result<reqwest::Response, UpstreamError> {
        let unreachable = |reason: String| UpstreamError::Unreachable { provider: provider.name.clone(), reason };
        let endpoint = self.endpoints.get(&provider.name).ok_or_else(|| unreachable("unknown provider".into()))?;
        let url = if protocol == Protocol::Gemini {
            let method = if stream { ":streamGenerateContent?alt=sse" } else { ":generateContent" };
            // A model name is one path segment of plain characters; nothing else reaches the URL.
            if model.is_empty() || !model.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) {
                return Err(unreachable(format!("model {model:?} is not a Gemini model name")));
            }
            endpoint
                .url
                .join(&format!("./{model}{method}"))
                .map_err(|e| unreachable(format!("model {model:?}: {e}")))?
        } else {
            endpoint.url.clone()
        };
        let mut req =
            self.client.post(url).header(header::CONTENT_TYPE, HeaderValue::from_static("application/json")).body(body);
        if stream {
            req = req.header(header::ACCEPT, HeaderValue::from_static("text/event-stream"));
        }
        if let Some((name, value)) = endpoint.auth.get(key) {
            req = req.header(name, value);
        }
        if protocol == Protocol::AnthropicMessages && !pass.contains_key("anthropic-version") {
            req = req.header("anthropic-version", "2023-06-01");
        }
        for (k, v) in pass {
            req = req.header(k, v);
        }
        req.send().await.map_err(|e| unreachable(without_url(&e)))
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

fn d_connect() -> u64 {
    5_000
}
fn d_idle() -> u64 {
    60_000
}

/// Upstream HTTP settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// TCP/TLS connect timeout.
    #[serde(default = "d_connect")]
    pub connect_timeout_ms: u64,
    /// Longest wait for the next bytes of a response.
    #[serde(default = "d_idle")]
    pub idle_timeout_ms: u64,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig { connect_timeout_ms: d_connect(), idle_timeout_ms: d_idle() }
    }
}

/// An upstream provider.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name routes refer to.
    pub name: String,
    /// `openai-chat` or `anthropic-messages`.
    pub protocol: Protocol,
    /// Base URL including `/v1`.
    pub base_url: String,
    /// Env var holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// A pool of keys instead: env vars, each with its own cap.
    #[serde(default)]
    pub api_key_envs: Vec<KeyConfig>,
    /// Most requests in flight at once on `api_key_env` (or on the keyless provider).
    #[serde(default)]
    pub max_inflight: Option<u32>,
    /// Compat profile (default: the protocol's).
    #[serde(default)]
    pub profile: Option<String>,
}

/// One key of a provider's pool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Env var holding the key; also the key's name in headers, metrics and records.
    pub env: String,
    /// Most requests in flight at once on it.
    #[serde(default)]
    pub max_inflight: Option<u32>,
}

impl ProviderConfig {
    /// Its keys by name with their caps: the pool, the one key, or [`NO_KEY`](shadowgate_core::routing::NO_KEY).
    pub fn keys(&self) -> Vec<(String, Option<u32>)> {
        if !self.api_key_envs.is_empty() {
            return self.api_key_envs.iter().map(|k| (k.env.clone(), k.max_inflight)).collect();
        }
        let name = self.api_key_env.clone().unwrap_or_else(|| shadowgate_core::routing::NO_KEY.to_string());
        vec![(name, self.max_inflight)]
    }

    /// Checks the URL and that the profile is one of the protocol's; `at` is the provider's key.
    pub fn validate(&self, at: &str) -> Result<(), Invalid> {
        let key = |k: &str| format!("{at}.{k}");
        if self.api_key_env.is_some() && !self.api_key_envs.is_empty() {
            return Err(Invalid::new(key("api_key_envs"), "give `api_key_env` or `api_key_envs`, not both"));
        }
        if !self.api_key_envs.is_empty() && self.max_inflight.is_some() {
            return Err(Invalid::new(key("max_inflight"), "with `api_key_envs`, each key sets its own `max_inflight`"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, k) in self.api_key_envs.iter().enumerate() {
            if !seen.insert(k.env.as_str()) {
                return Err(Invalid::new(key(&format!("api_key_envs[{i}].env")), format!("duplicate key {:?}", k.env)));
            }
            if k.max_inflight == Some(0) {
                return Err(Invalid::new(key(&format!("api_key_envs[{i}].max_inflight")), "must be at least 1"));
            }
        }
        if self.max_inflight == Some(0) {
            return Err(Invalid::new(key("max_inflight"), "must be at least 1"));
        }
        if !(self.base_url.starts_with("http://") || self.base_url.starts_with("https://")) {
            return Err(Invalid::new(key("base_url"), format!("{:?} is not an http(s) URL", self.base_url)));
        }
        if let Some(profile) = &self.profile {
            let prof = shadowgate_core::compat::profile(Some(profile), self.protocol)
                .map_err(|e| Invalid::new(key("profile"), e.message))?;
            if prof.protocol != self.protocol {
                return Err(Invalid::new(
                    key("profile"),
                    format!("profile {profile:?} is for {}, not {}", prof.protocol, self.protocol),
                ));
            }
        }
        Ok(())
    }
}
