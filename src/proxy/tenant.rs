//! Who a request belongs to, and the run mode that follows for it.

use super::config::{Config, RouteConfig};
use super::mode::{self, Mode, Resolution, Setting};
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

/// The tenant a request belongs to, with its mode settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Tenant name (`default` when unidentified).
    pub name: String,
    /// Its mode, if it sets one.
    pub setting: Option<Setting>,
    /// May it set `x-shadowgate-mode`?
    pub allow_header: bool,
}

/// Identifies the tenant of a request: the tenant header, else the client key's SHA-256.
pub fn identify(cfg: &Config, headers: &HeaderMap) -> Tenant {
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok());
    let by_header = header(&cfg.tenant_header)
        .and_then(|v| cfg.tenants.iter().find(|t| t.header_value.as_deref() == Some(v) || t.name == v));
    let by_key = || {
        let key = header("x-api-key").or_else(|| header("authorization").and_then(|a| a.strip_prefix("Bearer ")))?;
        let digest = shadowgate_core::context::hex(&Sha256::digest(key.as_bytes()));
        cfg.tenants.iter().find(|t| t.api_key_sha256.iter().any(|h| h.eq_ignore_ascii_case(&digest)))
    };
    // Unidentified requests belong to the tenant named "default", if the config has one.
    match by_header.or_else(by_key).or_else(|| cfg.tenants.iter().find(|t| t.name == "default")) {
        Some(t) => Tenant {
            name: t.name.clone(),
            setting: t.mode.map(|m| Setting { mode: m, locked: t.mode_locked }),
            allow_header: t.allow_mode_header,
        },
        None => Tenant { name: "default".into(), setting: None, allow_header: false },
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
