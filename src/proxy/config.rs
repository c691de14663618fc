//! The proxy's TOML config, validated with errors that name the file, line
//! and key. Upstream API keys are never in the file: only the names of the
//! environment variables that hold them.
//!
//! This file composes the sections; each section is defined, defaulted and
//! validated by the module it configures (`[shadow]` by the shadow executor,
//! `[sink]` and `[sampling]` by the sink, `[gate]` by the gate, `[modules]`
//! by the stages, `[upstream]` and `[[providers]]` by the upstream client).

use super::mode::Mode;
use super::primary::PrimaryConfig;
use super::routing::RoutingConfig;
use super::shadow::ShadowConfig;
use super::stages::ModulesConfig;
use super::upstream::{ProviderConfig, UpstreamConfig};
use crate::gate::GateConfig;
use crate::owners::Owners;
use crate::sink::{SamplingConfig, SinkConfig};
use crate::toml_error::Invalid;
use serde::{Deserialize, Serialize};
use shadowgate_core::Protocol;
use std::collections::BTreeSet;
use std::path::Path;

/// A config that could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::toml_error::display(file, *line, key, message))]
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
    /// Header naming the tenant (by a tenant's `header_value`), honoured only with `trust_tenant_header`.
    #[serde(default = "d_tenant_header")]
    pub tenant_header: String,
    /// A trusted front (gateway, mesh) sets the tenant header and strips any client copy.
    #[serde(default)]
    pub trust_tenant_header: bool,
    /// Header whose value keeps `split:P` sticky (e.g. a user id); the request id when absent.
    #[serde(default)]
    pub split_key_header: Option<String>,
    /// Upstream HTTP settings.
    #[serde(default)]
    pub upstream: UpstreamConfig,
    /// Retries, backoff and cooldowns.
    #[serde(default)]
    pub routing: RoutingConfig,
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
    /// The wasm primary: its pool, deadline and circuit breakers.
    #[serde(default)]
    pub primary: PrimaryConfig,
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
    pub gate: GateConfig,
    /// Who fixes each module and where.
    #[serde(default)]
    pub owners: Owners,
}

/// A route.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Route id.
    pub id: String,
    /// Model pattern (`*` wildcards).
    pub model: String,
    /// Other model names (or patterns) it answers to.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Client protocol (endpoint) it serves; every one when absent.
    #[serde(default)]
    pub endpoint: Option<Protocol>,
    /// Tenant it serves; every one when absent.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Provider name: the one target (or use `targets`).
    #[serde(default)]
    pub provider: Option<String>,
    /// Model sent upstream with `provider` (default: the requested one).
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// Failover targets, in order (instead of `provider`).
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
    /// Route-level mode.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Lock it.
    #[serde(default)]
    pub mode_locked: bool,
}

/// One failover target of a route.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// Provider name.
    pub provider: String,
    /// Model sent upstream (default: the requested one).
    #[serde(default)]
    pub upstream_model: Option<String>,
    /// Share of traffic among adjacent weighted targets.
    #[serde(default)]
    pub weight: Option<u32>,
}

impl RouteConfig {
    /// Its targets: `targets`, or the one `provider` names.
    pub fn targets(&self) -> Vec<TargetConfig> {
        match &self.provider {
            Some(p) => {
                vec![TargetConfig { provider: p.clone(), upstream_model: self.upstream_model.clone(), weight: None }]
            }
            None => self.targets.clone(),
        }
    }
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

impl Config {
    /// Loads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            line: 0,
            key: String::new(),
            message: crate::toml_error::unreadable(&e),
        })?;
        Config::parse(&text, &file)
    }

    /// Parses and validates config text.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let at_key = |Invalid { key, message }: Invalid| {
            // Point at the first line that sets the key's last part, or opens its table.
            let last = key.rsplit('.').next().unwrap_or(&key).split('[').next().unwrap_or("");
            let header = |l: &str| {
                l.strip_prefix('[')
                    .map(|h| h.trim_matches(|c| c == '[' || c == ']').trim())
                    .is_some_and(|h| h == key || h.rsplit('.').next() == Some(last))
            };
            let line =
                text.lines().map(str::trim_start).position(|l| l.starts_with(last) || header(l)).map_or(0, |i| i + 1);
            ConfigError { file: file.into(), line, key, message }
        };
        check_protocols(text).map_err(at_key)?;
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let (line, key, message) = crate::toml_error::locate(text, &e);
            ConfigError { file: file.into(), line, key, message }
        })?;
        cfg.validate().map_err(at_key)?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), Invalid> {
        let mut names = BTreeSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            if !names.insert(p.name.as_str()) {
                return Err(Invalid::new(format!("providers[{i}].name"), format!("duplicate provider {:?}", p.name)));
            }
            p.validate(&format!("providers[{i}]"))?;
        }
        if self.routes.is_empty() {
            return Err(Invalid::new("routes", "at least one route is needed"));
        }
        let mut ids = BTreeSet::new();
        for (i, r) in self.routes.iter().enumerate() {
            let key = |k: &str| format!("routes[{i}].{k}");
            if !ids.insert(r.id.as_str()) {
                return Err(Invalid::new(key("id"), format!("duplicate route {:?}", r.id)));
            }
            match (&r.provider, r.targets.is_empty()) {
                (Some(_), false) => return Err(Invalid::new(key("targets"), "give `provider` or `targets`, not both")),
                (None, true) => return Err(Invalid::new(key("provider"), "a route needs `provider` or `targets`")),
                (Some(p), true) if !names.contains(p.as_str()) => {
                    return Err(Invalid::new(key("provider"), format!("no provider named {p:?}")));
                }
                _ => {}
            }
            for (t, target) in r.targets.iter().enumerate() {
                if !names.contains(target.provider.as_str()) {
                    return Err(Invalid::new(
                        key(&format!("targets[{t}].provider")),
                        format!("no provider named {:?}", target.provider),
                    ));
                }
                if target.weight == Some(0) {
                    return Err(Invalid::new(key(&format!("targets[{t}].weight")), "a weight is at least 1"));
                }
            }
        }
        let mut tenants = BTreeSet::new();
        for (i, t) in self.tenants.iter().enumerate() {
            if !tenants.insert(t.name.as_str()) {
                return Err(Invalid::new(format!("tenants[{i}].name"), format!("duplicate tenant {:?}", t.name)));
            }
            if let Some(bad) =
                t.api_key_sha256.iter().find(|h| h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                return Err(Invalid::new(
                    format!("tenants[{i}].api_key_sha256"),
                    format!("{bad:?} is not a SHA-256 hex digest"),
                ));
            }
        }
        self.modules.validate()?;
        self.gate.validate()?;
        let known_tenant = |t: &str| t == "default" || tenants.contains(t);
        for (i, r) in self.routes.iter().enumerate() {
            if let Some(t) = r.tenant.as_deref().filter(|t| !known_tenant(t)) {
                return Err(Invalid::new(format!("routes[{i}].tenant"), format!("no tenant named {t:?}")));
            }
        }
        if let Some(t) = self.sampling.tenants.keys().find(|t| !known_tenant(t)) {
            return Err(Invalid::new(format!("sampling.tenants.{t}"), format!("no tenant named {t:?}")));
        }
        if let Some(r) = self.sampling.routes.keys().find(|r| !ids.contains(r.as_str())) {
            return Err(Invalid::new(format!("sampling.routes.{r}"), format!("no route with id {r:?}")));
        }
        self.routing.validate()?;
        self.primary.validate()?;
        self.shadow.validate()?;
        self.sampling.validate()?;
        self.sink.validate()?;
        self.owners.validate()?;
        self.listen
            .parse::<std::net::SocketAddr>()
            .map_err(|e| Invalid::new("listen", format!("{:?}: {e}", self.listen)))?;
        Ok(())
    }

    /// The provider named `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderConfig> {
        self.providers.iter().find(|p| p.name == name)
    }

    /// The route table in the core's `routing.resolve` shape, serialized
    /// (once per config load: every routing query embeds it as it is).
    pub fn route_table(&self) -> Box<serde_json::value::RawValue> {
        use shadowgate_core::routing::{KeySpec, Provider, Route, RouteTarget, Table};
        let table = Table {
            routes: self
                .routes
                .iter()
                .map(|r| Route {
                    id: r.id.clone(),
                    model: r.model.clone(),
                    aliases: r.aliases.clone(),
                    client_protocol: r.endpoint,
                    tenant: r.tenant.clone(),
                    targets: r
                        .targets()
                        .into_iter()
                        .map(|t| RouteTarget {
                            provider: t.provider,
                            upstream_model: t.upstream_model,
                            weight: t.weight,
                        })
                        .collect(),
                })
                .collect(),
            providers: self
                .providers
                .iter()
                .map(|p| Provider {
                    name: p.name.clone(),
                    protocol: p.protocol,
                    keys: p.keys().into_iter().map(|(name, max_inflight)| KeySpec { name, max_inflight }).collect(),
                })
                .collect(),
            retry: self.routing.retry_policy(),
            cooldown: self.routing.cooldown.policy(),
        };
        serde_json::value::to_raw_value(&table).expect("a route table serializes")
    }
}

/// Protocol names are checked before the typed parse so that a bad one is
/// reported at its full key (`providers[0].protocol`), like other values.
fn check_protocols(text: &str) -> Result<(), Invalid> {
    // A syntax error is left to the typed parse, which reports it with its line.
    let Ok(table) = text.parse::<toml::Table>() else { return Ok(()) };
    for (section, field) in [("providers", "protocol"), ("routes", "endpoint")] {
        let items = table.get(section).and_then(toml::Value::as_array).map_or(&[][..], Vec::as_slice);
        for (i, item) in items.iter().enumerate() {
            if let Some(v) = item.get(field).and_then(toml::Value::as_str) {
                Protocol::parse(v, "").map_err(|e| Invalid::new(format!("{section}[{i}].{field}"), e.message))?;
            }
        }
    }
    Ok(())
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
        assert_eq!(c.modules.stage(shadowgate_core::Module::Compat), crate::stage::Stage::Shadow);
        assert_eq!(c.shadow.queue_size, 1024);
        let table: serde_json::Value = serde_json::from_str(c.route_table().get()).unwrap();
        assert_eq!(table["routes"][0]["targets"][0]["provider"], "openai");
        assert_eq!(table["providers"][0]["protocol"], "openai-chat");
        assert_eq!(table["providers"][0]["keys"], serde_json::json!([{"name": "-", "max_inflight": null}]));
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

    #[test]
    fn failover_targets_and_key_pools_are_checked_by_key() {
        let chain = OK.replace(
            "provider = \"openai\"\n",
            "aliases = [\"default\"]\ntargets = [{ provider = \"openai\", weight = 2 }, { provider = \"azure\" }]\n",
        );
        let e = Config::parse(&chain, "c.toml").unwrap_err();
        assert_eq!(
            (e.key.as_str(), e.message.as_str()),
            ("routes[0].targets[1].provider", "no provider named \"azure\"")
        );
        let both =
            OK.replace("provider = \"openai\"\n", "provider = \"openai\"\ntargets = [{ provider = \"openai\" }]\n");
        assert_eq!(Config::parse(&both, "c.toml").unwrap_err().key, "routes[0].targets");
        let neither = OK.replace("provider = \"openai\"\n", "");
        assert_eq!(Config::parse(&neither, "c.toml").unwrap_err().key, "routes[0].provider");
        let pool = OK.replace(
            "base_url = \"http://127.0.0.1:9000/v1\"",
            "base_url = \"http://127.0.0.1:9000/v1\"\napi_key_env = \"K\"\napi_key_envs = [{ env = \"K1\" }]",
        );
        assert_eq!(Config::parse(&pool, "c.toml").unwrap_err().key, "providers[0].api_key_envs");
        let dup = OK.replace(
            "base_url = \"http://127.0.0.1:9000/v1\"",
            "base_url = \"http://127.0.0.1:9000/v1\"\napi_key_envs = [{ env = \"K1\" }, { env = \"K1\" }]",
        );
        assert_eq!(Config::parse(&dup, "c.toml").unwrap_err().key, "providers[0].api_key_envs[1].env");
        let for_tenant = OK.replace("model = \"gpt-*\"", "model = \"gpt-*\"\ntenant = \"acme\"");
        assert_eq!(Config::parse(&for_tenant, "c.toml").unwrap_err().key, "routes[0].tenant");
        let ok = chain.replace(", { provider = \"azure\" }", "");
        let table: serde_json::Value =
            serde_json::from_str(Config::parse(&ok, "c.toml").unwrap().route_table().get()).unwrap();
        assert_eq!(table["routes"][0]["aliases"], serde_json::json!(["default"]));
        assert_eq!(table["routes"][0]["targets"][0]["weight"], 2);
        assert_eq!(table["retry"]["max_attempts"], 3);
    }

    #[test]
    fn tables_keyed_by_module_tenant_or_route_name_a_known_one() {
        let e = Config::parse(&format!("{OK}\n[gate.modules.tokeniser]\nmin_samples = 10"), "c.toml").unwrap_err();
        assert_eq!(e.key, "gate.modules.tokeniser");
        assert!(e.message.contains("known: routing, tools, compat, streaming, tokenizer"), "{e}");
        assert!(e.line > 0, "{e}");
        let e = Config::parse(&format!("{OK}\n[sampling.tenants]\nnobody = 0.5"), "c.toml").unwrap_err();
        assert_eq!((e.key.as_str(), e.message.as_str()), ("sampling.tenants.nobody", "no tenant named \"nobody\""));
        let e = Config::parse(&format!("{OK}\n[sampling.routes]\nclaude = 0.5"), "c.toml").unwrap_err();
        assert_eq!(e.key, "sampling.routes.claude");
        assert!(
            Config::parse(&format!("{OK}\n[sampling.routes]\ngpt = 0.5\n[sampling.tenants]\ndefault = 1.0"), "c.toml")
                .is_ok()
        );
    }

    #[test]
    fn errors_say_which_file_is_missing_and_which_key_holds_a_bad_value() {
        let e = Config::load(Path::new("no/such/config.toml")).unwrap_err();
        assert_eq!(e.to_string(), "no/such/config.toml: no such file");
        let e = Config::parse(&format!("{OK}\n[modules.stages]\ncompat = \"beta\""), "c.toml").unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (13, "compat"), "{e}");
        assert!(e.to_string().starts_with("c.toml:13: compat: unknown variant `beta`"), "{e}");
        let e = crate::diff::Ruleset::load(Some("v99")).unwrap_err();
        assert!(e.to_string().ends_with("diff_ruleset_v99.toml: no such file (published versions: v1, v2)"), "{e}");
    }
}
