//! Who a request belongs to, and the run mode that follows for it.
//!
//! The trust model: a credential decides. When the SHA-256 of the client's
//! API key (`x-api-key`, or `authorization: Bearer …`) is one a tenant lists,
//! the request is that tenant's, whatever headers it sends. The tenant
//! header counts only when the config says a trusted front sets it
//! (`trust_tenant_header = true`), and only through a tenant's
//! `header_value`, never its name. Anything else belongs to the tenant named
//! `default`. Only a tenant identified by key or trusted header may set
//! `x-shadowgate-mode` (if it has `allow_mode_header`): an anonymous client
//! never moves itself.

use super::config::{Config, RouteConfig, TenantConfig};
use super::mode::{self, Mode, Resolution, Setting};
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// How a request's tenant was established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identified {
    /// By the client's API key.
    Key,
    /// By the tenant header, set by a trusted front.
    TrustedHeader,
    /// Not at all: the `default` tenant.
    Anonymous,
    /// By name, by an authorized admin (`/admin/modes`).
    Admin,
}

/// The tenant a request belongs to, with its mode settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Tenant name (`default` when unidentified).
    pub name: String,
    /// How it was identified.
    pub identified: Identified,
    /// Its mode, if it sets one.
    pub setting: Option<Setting>,
    /// May it set `x-shadowgate-mode`?
    pub allow_header: bool,
}

impl Tenant {
    fn of(t: Option<&TenantConfig>, identified: Identified) -> Tenant {
        match t {
            Some(t) => Tenant {
                name: t.name.clone(),
                identified,
                setting: t.mode.map(|m| Setting { mode: m, locked: t.mode_locked }),
                allow_header: t.allow_mode_header && identified != Identified::Anonymous,
            },
            None => Tenant { name: "default".into(), identified, setting: None, allow_header: false },
        }
    }
}

/// The client's API key, as the client protocols send it.
pub fn client_key(headers: &HeaderMap) -> Option<&str> {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    header("x-api-key")
        .or_else(|| header("x-goog-api-key"))
        .or_else(|| header("authorization").and_then(|a| a.strip_prefix("Bearer ")))
}

/// Identifies the tenant of a request (see the module docs for the rules).
pub fn identify(cfg: &Config, headers: &HeaderMap) -> Tenant {
    if let Some(key) = client_key(headers) {
        let digest = shadowgate_core::context::hex(&Sha256::digest(key.as_bytes()));
        if let Some(t) = cfg.tenants.iter().find(|t| t.api_key_sha256.iter().any(|h| h.eq_ignore_ascii_case(&digest))) {
            return Tenant::of(Some(t), Identified::Key);
        }
    }
    if cfg.trust_tenant_header
        && let Some(v) = headers.get(&cfg.tenant_header).and_then(|v| v.to_str().ok())
        && let Some(t) = cfg.tenants.iter().find(|t| t.header_value.as_deref() == Some(v))
    {
        return Tenant::of(Some(t), Identified::TrustedHeader);
    }
    Tenant::of(cfg.tenants.iter().find(|t| t.name == "default"), Identified::Anonymous)
}

/// The tenant named `name`, for an authorized admin (`default` when there is none).
pub fn by_name(cfg: &Config, name: &str) -> Tenant {
    match cfg.tenants.iter().find(|t| t.name == name) {
        Some(t) => Tenant::of(Some(t), Identified::Admin),
        None => Tenant::of(cfg.tenants.iter().find(|t| t.name == "default"), Identified::Anonymous),
    }
}

/// Resolves the mode for `tenant` on `route` (none: before routing) with the request's header.
pub fn resolve(
    cfg: &Config,
    tenant: &Tenant,
    route: Option<&RouteConfig>,
    header: Option<Mode>,
) -> Result<Resolution, mode::Forbidden> {
    let global = cfg.mode.map(|m| Setting { mode: m, locked: cfg.mode_locked });
    let route = route.and_then(|r| r.mode.map(|m| Setting { mode: m, locked: r.mode_locked }));
    mode::resolve(global, tenant.setting, route, header, tenant.allow_header, &tenant.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn config(trust: bool) -> Config {
        let prod = shadowgate_core::context::hex(&Sha256::digest(b"sk-prod"));
        Config::parse(
            &format!(
                r#"
trust_tenant_header = {trust}
[[providers]]
name = "p"
protocol = "openai-chat"
base_url = "http://127.0.0.1:9/v1"
[[routes]]
id = "r"
model = "*"
provider = "p"
[[tenants]]
name = "prod"
api_key_sha256 = ["{prod}"]
[[tenants]]
name = "testers"
header_value = "qa-team"
allow_mode_header = true
[[tenants]]
name = "default"
allow_mode_header = true
"#
            ),
            "t.toml",
        )
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.parse().unwrap(), HeaderValue::from_static(v))).collect()
    }

    #[test]
    fn a_key_decides_whatever_the_tenant_header_says() {
        for trust in [false, true] {
            let t = identify(&config(trust), &headers(&[("x-api-key", "sk-prod"), ("x-shadowgate-tenant", "qa-team")]));
            assert_eq!((t.name.as_str(), t.identified, t.allow_header), ("prod", Identified::Key, false));
            let t = identify(&config(trust), &headers(&[("authorization", "Bearer sk-prod")]));
            assert_eq!(t.name, "prod");
        }
    }

    #[test]
    fn the_tenant_header_counts_only_from_a_trusted_front_and_only_by_header_value() {
        let t = identify(&config(false), &headers(&[("x-shadowgate-tenant", "qa-team")]));
        assert_eq!((t.name.as_str(), t.allow_header), ("default", false), "untrusted header ignored");
        let t = identify(&config(true), &headers(&[("x-shadowgate-tenant", "qa-team")]));
        assert_eq!((t.name.as_str(), t.identified, t.allow_header), ("testers", Identified::TrustedHeader, true));
        let t = identify(&config(true), &headers(&[("x-shadowgate-tenant", "testers")]));
        assert_eq!(t.name, "default", "a tenant's name is not its header value");
    }

    #[test]
    fn anonymous_clients_never_set_their_mode() {
        let t = identify(&config(true), &headers(&[("x-api-key", "sk-unknown")]));
        assert_eq!((t.name.as_str(), t.identified, t.allow_header), ("default", Identified::Anonymous, false));
        let cfg = config(false);
        assert!(resolve(&cfg, &t, None, Some(Mode::WasmPrimary)).is_err());
    }
}
