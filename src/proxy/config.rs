//! The proxy's TOML config, validated with errors that name the file, line
//! and key. Upstream API keys are never in the file: only the names of the
//! environment variables that hold them.

use super::mode::{Mode, Stage};
use serde::{Deserialize, Serialize};
use shadowgate_core::Protocol;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A config that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {key}: {message}")]
pub struct ConfigError {
    /// File.
    pub file: String,
    /// 1-based line, 0 when unknown.
    pub line: usize,
    /// The key at fault, as a dotted path.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

fn d_listen() -> String {
    "127.0.0.1:8080".into()
}
fn d_body() -> usize {
    4 << 20
}
fn d_tenant_header() -> String {
    "x-shadowgate-tenant".into()
}
fn d_connect() -> u64 {
    5_000
}
fn d_idle() -> u64 {
    60_000
}
fn d_canary() -> u8 {
    10
}
fn d_queue() -> usize {
    1024
}
fn d_workers() -> usize {
    2
}
fn d_deadline() -> u64 {
    250
}
fn d_memory() -> usize {
    64
}
fn d_stream_cap() -> usize {
    8 << 20
}
fn d_nice() -> i32 {
    10
}
fn d_data_dir() -> PathBuf {
    "./shadowgate-data".into()
}
fn d_rate() -> f64 {
    0.01
}
fn d_budget() -> u32 {
    60
}
fn d_cap() -> u32 {
    600
}

/// The whole config.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Listen address.
    #[serde(default = "d_listen")]
    pub listen: String,
    /// Global mode; module stages decide when absent.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Lock the global mode (the emergency switch: `mode = "native_primary"`, `mode_locked = true`).
    #[serde(default)]
    pub mode_locked: bool,
    /// Env var holding the admin token; admin endpoints answer 403 without it.
    #[serde(default)]
    pub admin_token_env: Option<String>,
    /// Largest request body accepted (413 beyond).
    #[serde(default = "d_body")]
    pub max_body_bytes: usize,
    /// Request headers passed through to the upstream.
    #[serde(default)]
    pub pass_headers: Vec<String>,
    /// Header naming the tenant.
    #[serde(default = "d_tenant_header")]
    pub tenant_header: String,
    /// Header whose value keeps `split:P` sticky (e.g. a user id); the request id when absent.
    #[serde(default)]
    pub split_key_header: Option<String>,
    /// Upstream HTTP settings.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// Providers.
    pub providers: Vec<ProviderConfig>,
    /// Routes, in priority order.
    pub routes: Vec<RouteConfig>,
    /// Tenants.
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Module promotion stages.
    #[serde(default)]
    pub modules: ModulesConfig,
    /// Shadow limits.
    #[serde(default)]
    pub shadow: ShadowConfig,
    /// Where records go.
    #[serde(default)]
    pub sink: SinkConfig,
    /// Which requests become replayable cases.
    #[serde(default)]
    pub sampling: SamplingConfig,
    /// Promotion thresholds and automatic rollback.
    #[serde(default)]
    pub gate: crate::gate::GateConfig,
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
    pub protocol: String,
    /// Base URL including `/v1`.
    pub base_url: String,
    /// Env var holding the API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// Compat profile (default: the protocol's).
    #[serde(default)]
    pub profile: Option<String>,
}

/// A route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Route id.
    pub id: String,
    /// Model pattern (`*` wildcards).
    pub model: String,
    /// Client protocol (endpoint) it serves; both when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Provider name.
    pub provider: String,
    /// Model sent upstream (default: the requested one).
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// Route-level mode.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Lock it.
    #[serde(default)]
    pub mode_locked: bool,
}

/// A tenant.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Name.
    pub name: String,
    /// SHA-256 (hex) of client API keys that identify it.
    #[serde(default)]
    pub api_key_sha256: Vec<String>,
    /// Value of the tenant header that identifies it.
    #[serde(default)]
    pub header_value: Option<String>,
    /// Tenant-level mode.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Lock it.
    #[serde(default)]
    pub mode_locked: bool,
    /// May its requests set `x-shadowgate-mode`?
    #[serde(default)]
    pub allow_mode_header: bool,
}

/// Module stages.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ModulesConfig {
    /// Stage of each module (default `shadow`).
    #[serde(default)]
    pub stages: BTreeMap<String, Stage>,
    /// Share of wasm-primary traffic in the canary stage.
    #[serde(default = "d_canary")]
    pub canary_percent: u8,
    /// Where `gate --apply` and the admin API keep stages (default: `<data_dir>/state/modules.json`).
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

impl Default for ModulesConfig {
    fn default() -> Self {
        ModulesConfig { stages: BTreeMap::new(), canary_percent: d_canary(), state_file: None }
    }
}

/// Shadow limits.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowConfig {
    /// Jobs waiting; more are dropped (counted).
    #[serde(default = "d_queue")]
    pub queue_size: usize,
    /// Worker threads.
    #[serde(default = "d_workers")]
    pub workers: usize,
    /// Deadline per guest call.
    #[serde(default = "d_deadline")]
    pub deadline_ms: u64,
    /// Guest memory cap.
    #[serde(default = "d_memory")]
    pub memory_limit_mb: usize,
    /// Upstream bytes kept per stream for the shadow; longer streams are not shadowed (counted).
    #[serde(default = "d_stream_cap")]
    pub max_stream_bytes: usize,
    /// A candidate guest instead of the embedded one.
    #[serde(default)]
    pub guest: Option<PathBuf>,
    /// Nice value of the worker threads (Linux): shadow work yields the CPU to serving.
    #[serde(default = "d_nice")]
    pub nice: i32,
}

impl Default for ShadowConfig {
    fn default() -> Self {
        ShadowConfig {
            queue_size: d_queue(),
            workers: d_workers(),
            deadline_ms: d_deadline(),
            memory_limit_mb: d_memory(),
            max_stream_bytes: d_stream_cap(),
            guest: None,
            nice: d_nice(),
        }
    }
}

/// Where records are written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// Folder of the `diffs/` and `cases/` tables.
    #[serde(default = "d_data_dir")]
    pub data_dir: PathBuf,
    /// Instance id in file names (default `<hostname>-<pid>`).
    #[serde(default)]
    pub instance_id: Option<String>,
    /// Records waiting for the writer; more are dropped (counted).
    #[serde(default = "d_channel")]
    pub channel_size: usize,
    /// Rows collected before they are handed to the file.
    #[serde(default = "d_batch_rows")]
    pub batch_rows: usize,
    /// Rows per Parquet row group.
    #[serde(default = "d_row_group")]
    pub row_group_rows: usize,
    /// A file closes (becomes visible) at this many rows…
    #[serde(default = "d_file_rows")]
    pub max_file_rows: usize,
    /// …or this size…
    #[serde(default = "d_file_mb")]
    pub max_file_mb: usize,
    /// …or this age: the most a kill -9 can lose.
    #[serde(default = "d_flush_ms")]
    pub flush_interval_ms: u64,
    /// Days of `cases` partitions kept.
    #[serde(default = "d_keep_cases")]
    pub retention_days_cases: u32,
    /// Days of `diffs` partitions kept.
    #[serde(default = "d_keep_diffs")]
    pub retention_days_diffs: u32,
    /// JSON-pointer patterns (`*`, `**`) whose values are always hashed as PII.
    #[serde(default)]
    pub pii_paths: Vec<String>,
}

fn d_channel() -> usize {
    65_536
}
fn d_batch_rows() -> usize {
    8192
}
fn d_row_group() -> usize {
    65_536
}
fn d_file_rows() -> usize {
    1_000_000
}
fn d_file_mb() -> usize {
    256
}
fn d_flush_ms() -> u64 {
    30_000
}
fn d_keep_cases() -> u32 {
    14
}
fn d_keep_diffs() -> u32 {
    90
}

impl Default for SinkConfig {
    fn default() -> Self {
        toml::from_str("").expect("the sink defaults parse")
    }
}

impl SinkConfig {
    /// The writer's options.
    pub fn options(&self) -> crate::sink::SinkOptions {
        crate::sink::SinkOptions {
            data_dir: self.data_dir.clone(),
            instance: crate::sink::instance_id(self.instance_id.as_deref()),
            channel_size: self.channel_size.max(1),
            batch_rows: self.batch_rows.max(1),
            rotation: crate::sink::files::Rotation {
                row_group_rows: self.row_group_rows.max(1),
                max_file_rows: self.max_file_rows.max(1),
                max_file_bytes: self.max_file_mb.max(1) << 20,
                max_file_age: std::time::Duration::from_millis(self.flush_interval_ms.max(1)),
            },
            retention_cases_days: self.retention_days_cases,
            retention_diffs_days: self.retention_days_diffs,
        }
    }
}

/// Case sampling.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingConfig {
    /// Default share of requests kept as cases.
    #[serde(default = "d_rate")]
    pub rate: f64,
    /// Per-tenant rates.
    #[serde(default)]
    pub tenants: BTreeMap<String, f64>,
    /// Per-route rates.
    #[serde(default)]
    pub routes: BTreeMap<String, f64>,
    /// Mismatching requests always kept, up to this many a minute.
    #[serde(default = "d_budget")]
    pub mismatch_budget_per_minute: u32,
    /// Hard cap of cases a minute (mismatches have their own budget).
    #[serde(default = "d_cap")]
    pub cap_per_minute: u32,
    /// Rate used for a while after a new guest or core version starts.
    #[serde(default = "d_boost_rate")]
    pub boost_rate: f64,
    /// How long the boost lasts.
    #[serde(default = "d_boost_minutes")]
    pub boost_minutes: u32,
}

fn d_boost_rate() -> f64 {
    0.1
}
fn d_boost_minutes() -> u32 {
    60
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            rate: d_rate(),
            tenants: BTreeMap::new(),
            routes: BTreeMap::new(),
            mismatch_budget_per_minute: d_budget(),
            cap_per_minute: d_cap(),
            boost_rate: d_boost_rate(),
            boost_minutes: d_boost_minutes(),
        }
    }
}

/// The modules a stage can be set for.
pub const MODULES: &[&str] = &["routing", "tools", "compat", "streaming", "tokenizer"];

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        })?;
        Config::parse(&text, &file)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, key, message) = crate::toml_error::locate(text, &e);
            ConfigError { file: file.into(), line, key, message }
        })?;
        cfg.validate().map_err(|(key, message)| {
            // Point at the first line that mentions the key's last part.
            let last = key.rsplit('.').next().unwrap_or(&key).split('[').next().unwrap_or("");
            let line = text.lines().position(|l| l.trim_start().starts_with(last)).map_or(0, |i| i + 1);
            ConfigError { file: file.into(), line, key, message }
        })?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        let mut names = BTreeSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let key = |k: &str| format!("providers[{i}].{k}");
            if !names.insert(p.name.as_str()) {
                return Err((key("name"), format!("duplicate provider {:?}", p.name)));
            }
            let protocol = Protocol::parse(&p.protocol, "").map_err(|e| (key("protocol"), e.message))?;
            if !(p.base_url.starts_with("http://") || p.base_url.starts_with("https://")) {
                return Err((key("base_url"), format!("{:?} is not an http(s) URL", p.base_url)));
            }
            if let Some(profile) = &p.profile {
                let prof = shadowgate_core::compat::profile(Some(profile), protocol)
                    .map_err(|e| (key("profile"), e.message))?;
                if prof.protocol != protocol {
                    return Err((
                        key("profile"),
                        format!("profile {profile:?} is for {}, not {}", prof.protocol, protocol),
                    ));
                }
            }
        }
        if self.routes.is_empty() {
            return Err(("routes".into(), "at least one route is needed".into()));
        }
        let mut ids = BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("routes[{i}].{k}");
            if !ids.insert(r.id.as_str()) {
                return Err((key("id"), format!("duplicate route {:?}", r.id)));
            }
            if !names.contains(r.provider.as_str()) {
                return Err((key("provider"), format!("no provider named {:?}", r.provider)));
            }
            if let Some(e) = &r.endpoint {
                Protocol::parse(e, "").map_err(|e| (key("endpoint"), e.message))?;
            }
        }
        let mut tenants = BTreeSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if !tenants.insert(t.name.as_str()) {
                return Err((format!("tenants[{i}].name"), format!("duplicate tenant {:?}", t.name)));
            }
            if let Some(bad) =
                t.api_key_sha256.iter().find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err((format!("tenants[{i}].api_key_sha256"), format!("{bad:?} is not a SHA-256 hex digest")));
            }
        }
        if let Some(m) = self.modules.stages.keys().find(|m| !MODULES.contains(&m.as_str())) {
            return Err((format!("modules.stages.{m}"), format!("unknown module (known: {})", MODULES.join(", "))));
        }
        if self.modules.canary_percent > 100 {
            return Err(("modules.canary_percent".into(), "must be at most 100".into()));
        }
        if self.shadow.workers == 0 || self.shadow.queue_size == 0 {
            return Err(("shadow.workers".into(), "workers and queue_size must be at least 1".into()));
        }
        let rates = [
            ("sampling.rate".to_string(), self.sampling.rate),
            ("sampling.boost_rate".into(), self.sampling.boost_rate),
        ]
        .into_iter()
        .chain(self.sampling.tenants.iter().map(|(k, v)| (format!("sampling.tenants.{k}"), *v)))
        .chain(self.sampling.routes.iter().map(|(k, v)| (format!("sampling.routes.{k}"), *v)));
        for (key, rate) in rates {
            if !(0.0..=1.0).contains(&rate) {
                return Err((key, format!("rate {rate} is not in 0..=1")));
            }
        }
        for (i, p) in self.sink.pii_paths.iter().enumerate() {
            crate::diff::path::PathPattern::parse(p).map_err(|e| (format!("sink.pii_paths[{i}]"), e))?;
        }
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| ("listen".to_string(), format!("{:?}: {e}", self.listen)))?;
        Ok(())
    }

    /// The stage of `module` (default `shadow`).
    pub fn stage(&self, module: &str) -> Stage {
        self.modules.stages.get(module).copied().unwrap_or(Stage::Shadow)
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The route table in the core's `routing.resolve` shape.
    pub fn route_table(&self) -> serde_json::Value {
        let routes: Vec<serde_json::Value> = self
            .routes
            .iter()
            .map(|r| {
                let upstream = self.provider(&r.provider).map(|p| p.protocol.as_str()).unwrap_or("openai-chat");
                serde_json::json!({
                    "id": r.id, "model": r.model, "client_protocol": r.endpoint, "provider": r.provider,
                    "upstream_protocol": upstream, "upstream_model": r.upstream_model,
                })
            })
            .collect();
        serde_json::Value::Array(routes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
listen = "127.0.0.1:0"
[[providers]]
name = "openai"
protocol = "openai-chat"
base_url = "http://127.0.0.1:9000/v1"
[[routes]]
id = "gpt"
model = "gpt-*"
provider = "openai"
"#;

    #[test]
    fn a_minimal_config_loads_with_defaults() {
        let c = Config::parse(OK, "c.toml").unwrap();
        assert_eq!(c.stage("compat"), Stage::Shadow);
        assert_eq!(c.shadow.queue_size, 1024);
        assert_eq!(c.route_table()[0]["upstream_protocol"], "openai-chat");
    }

    #[test]
    fn errors_name_the_file_line_and_key() {
        let e = Config::parse(&OK.replace("model = \"gpt-*\"", "model = \"gpt-*\"\nmode = \"turbo\""), "c.toml")
            .unwrap_err();
        assert!(e.message.contains("invalid mode \"turbo\""), "{e}");
        assert_eq!((e.line, e.key.as_str()), (10, "mode"), "{e}");
        let e = Config::parse(&OK.replace("provider = \"openai\"", "provider = \"azure\""), "c.toml").unwrap_err();
        assert_eq!((e.key.as_str(), e.message.as_str()), ("routes[0].provider", "no provider named \"azure\""));
        let e = Config::parse(&format!("{OK}\napi_key = \"sk-secret\""), "c.toml").unwrap_err();
        assert!(e.message.contains("unknown field `api_key`"), "{e}");
        let e = Config::parse(&OK.replace("openai-chat", "grpc"), "c.toml").unwrap_err();
        assert_eq!(e.key, "providers[0].protocol");
        let e = Config::parse(&format!("{OK}\n[modules.stages]\nrouter = \"canary\""), "c.toml").unwrap_err();
        assert_eq!(e.key, "modules.stages.router");
    }
}
