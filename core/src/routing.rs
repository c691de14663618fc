//! Module `routing`: request context + route table → provider target.
//!
//! Contract: the client protocol, the requested model and tenant, and an
//! ordered route table in; the first matching route's provider, upstream
//! protocol and upstream model out. Patterns use `*` as a wildcard.

use crate::error::{CoreError, ErrorKind, Result};
use crate::protocol::Protocol;
use serde::{Deserialize, Serialize};

/// Version of the `routing` module.
pub const VERSION: &str = "routing/1.0.0";

/// One route of the table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// Route id (recorded with every diff).
    pub id: String,
    /// Model pattern, `*` wildcards allowed.
    pub model: String,
    /// Client protocol this route serves; any when absent.
    #[serde(default)]
    pub client_protocol: Option<String>,
    /// Tenant this route is for; any when absent.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Provider name.
    pub provider: String,
    /// Upstream protocol of the provider.
    pub upstream_protocol: String,
    /// Model to send upstream; the requested model when absent.
    #[serde(default)]
    pub upstream_model: Option<String>,
}

/// What to route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteRequest {
    /// Client protocol.
    pub client_protocol: String,
    /// Requested model.
    pub model: String,
    /// Tenant, if identified.
    #[serde(default)]
    pub tenant: Option<String>,
    /// The route table, in priority order.
    pub routes: Vec<Route>,
}

/// Where the request goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Matching route id.
    pub route_id: String,
    /// Provider name.
    pub provider: String,
    /// Upstream protocol.
    pub upstream_protocol: String,
    /// Model to send upstream.
    pub upstream_model: String,
}

/// Whether `text` matches `pattern` (`*` matches any run of characters).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Resolves the target of a request: the first route that matches.
pub fn resolve(req: &RouteRequest) -> Result<Target> {
    let client = Protocol::parse(&req.client_protocol, "/client_protocol")?;
    for (i, r) in req.routes.iter().enumerate() {
        let protocol_ok = match &r.client_protocol {
            Some(p) => Protocol::parse(p, &format!("/routes/{i}/client_protocol"))? == client,
            None => true,
        };
        let tenant_ok = r.tenant.is_none() || r.tenant == req.tenant;
        if protocol_ok && tenant_ok && glob_match(&r.model, &req.model) {
            let upstream = Protocol::parse(&r.upstream_protocol, &format!("/routes/{i}/upstream_protocol"))?;
            return Ok(Target {
                route_id: r.id.clone(),
                provider: r.provider.clone(),
                upstream_protocol: upstream.as_str().to_string(),
                upstream_model: r.upstream_model.clone().unwrap_or_else(|| req.model.clone()),
            });
        }
    }
    Err(CoreError::new(
        ErrorKind::NoRoute,
        "/model",
        format!("no route for model {:?} from an {} client", req.model, client),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(id: &str, model: &str, proto: &str) -> Route {
        Route {
            id: id.into(),
            model: model.into(),
            client_protocol: None,
            tenant: None,
            provider: format!("p-{id}"),
            upstream_protocol: proto.into(),
            upstream_model: None,
        }
    }

    #[test]
    fn globs() {
        assert!(glob_match("gpt-*", "gpt-4o"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxc"));
        assert!(!glob_match("ab*ba", "aba"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn first_matching_route_wins_and_misses_are_errors() {
        let mut via = route("via", "gpt-via-anthropic", "anthropic-messages");
        via.upstream_model = Some("claude-sonnet-4-5".into());
        let req = RouteRequest {
            client_protocol: "openai-chat".into(),
            model: "gpt-via-anthropic".into(),
            tenant: None,
            routes: vec![via, route("gpt", "gpt-*", "openai-chat")],
        };
        let t = resolve(&req).unwrap();
        assert_eq!((t.route_id.as_str(), t.upstream_model.as_str()), ("via", "claude-sonnet-4-5"));
        let miss = RouteRequest { model: "llama".into(), ..req };
        assert_eq!(resolve(&miss).unwrap_err().kind, ErrorKind::NoRoute);
    }
}
