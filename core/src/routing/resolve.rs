//! `routing.resolve`: the first matching route, its targets in failover
//! order (adjacent weighted targets shuffled by weight), each target's keys
//! that are not cooling down, least loaded first.

use super::{FailureClass, Health, KeySpec, Provider, RouteRequest, RouteTarget, glob_match, mix};
use crate::error::{CoreError, ErrorKind, Result};
use crate::protocol::Protocol;
use serde::{Deserialize, Serialize};

/// One attempt of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attempt {
    /// Position of its target in the route's `targets`.
    pub target: u32,
    /// Provider name.
    pub provider: String,
    /// Key name.
    pub key: String,
    /// Upstream protocol (the provider's).
    pub upstream_protocol: Protocol,
    /// Model to send upstream.
    pub upstream_model: String,
    /// Why it is here, in this place.
    pub reason: String,
}

/// A key the plan left out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Skipped {
    /// Position of its target.
    pub target: u32,
    /// Provider name.
    pub provider: String,
    /// Key name.
    pub key: String,
    /// Why it rests.
    pub reason: Option<FailureClass>,
    /// Until when (ms since the epoch).
    pub until_ms: u64,
}

/// Why no attempt can be made now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Unavailable {
    /// Status for the client: 429 when a rate limit or quota rests the keys, else 503.
    pub status: u16,
    /// When the first key is back.
    pub retry_after_ms: u64,
    /// What the client is told.
    pub message: String,
}

/// The ordered attempt plan of a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Matching route id.
    pub route_id: String,
    /// Attempts, in the order to try them.
    pub attempts: Vec<Attempt>,
    /// Keys left out because they are cooling down.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Skipped>,
    /// Set when `attempts` is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<Unavailable>,
}

/// The route's targets in failover order: listed order, except that a run of
/// adjacent weighted targets is shuffled by weight (load sharing among equals).
fn target_order(targets: &[RouteTarget], seed: u64) -> Vec<(usize, String)> {
    let mut order = Vec::with_capacity(targets.len());
    let mut i = 0;
    while i < targets.len() {
        if targets[i].weight.is_none() {
            order.push((i, "failover order".to_string()));
            i += 1;
            continue;
        }
        let start = i;
        while i < targets.len() && targets[i].weight.is_some() {
            i += 1;
        }
        let mut group: Vec<(usize, u64)> = (start..i).map(|t| (t, u64::from(targets[t].weight.unwrap_or(0)))).collect();
        let total: u64 = group.iter().map(|g| g.1).sum();
        let mut draw = 0u64;
        while !group.is_empty() {
            let left: u64 = group.iter().map(|g| g.1).sum();
            // Zero weights all left: keep the listed order.
            let pick = if left == 0 {
                0
            } else {
                let mut r = mix(seed, draw) % left;
                draw += 1;
                group
                    .iter()
                    .position(|g| {
                        if r < g.1 {
                            true
                        } else {
                            r -= g.1;
                            false
                        }
                    })
                    .unwrap_or(0)
            };
            let (t, w) = group.remove(pick);
            order.push((t, format!("weight {w} of {total}")));
        }
    }
    if cfg!(feature = "demo-candidate") {
        // The demo candidate's deliberate regression: the last target first.
        order.reverse();
    }
    order
}

/// Load of a key in millionths of its cap (unbounded keys: their in-flight count).
fn load(spec: &KeySpec, inflight: u32) -> (bool, u64) {
    match spec.max_inflight {
        Some(max) if max > 0 => (inflight >= max, u64::from(inflight) * 1_000_000 / u64::from(max)),
        Some(_) => (true, u64::MAX),
        None => (false, u64::from(inflight)),
    }
}

/// The keys of `provider` that can serve now, least loaded first (ties
/// rotated by the seed), and those cooling down.
fn keys<'a>(provider: &'a Provider, health: &Health, seed: u64) -> (Vec<(&'a KeySpec, String)>, Vec<Skipped>) {
    let n = provider.keys.len().max(1) as u64;
    let mut ready = Vec::new();
    let mut skipped = Vec::new();
    for (i, spec) in provider.keys.iter().enumerate() {
        let h = health.key(&provider.name, &spec.name);
        let inflight = h.map_or(0, |h| h.inflight);
        match h {
            Some(h) if h.cooldown_until_ms > health.now_ms => skipped.push(Skipped {
                target: 0,
                provider: provider.name.clone(),
                key: spec.name.clone(),
                reason: h.reason,
                until_ms: h.cooldown_until_ms,
            }),
            _ => {
                let (full, l) = load(spec, inflight);
                let rotation = (i as u64 + n - seed % n) % n;
                let cap = spec.max_inflight.map_or_else(|| "unbounded".to_string(), |m| m.to_string());
                let why = if full {
                    format!("key {} at its cap ({inflight}/{cap} in flight): waits for a slot", spec.name)
                } else {
                    format!("key {} {inflight}/{cap} in flight", spec.name)
                };
                ready.push(((full, l, rotation), spec, why));
            }
        }
    }
    ready.sort_by_key(|r| r.0);
    (ready.into_iter().map(|(_, spec, why)| (spec, why)).collect(), skipped)
}

/// Resolves the attempt plan of a request.
pub fn resolve(req: &RouteRequest) -> Result<Plan> {
    let table = &req.table;
    let matches = |pattern: &String| glob_match(pattern, &req.model);
    let Some((ri, route)) = table.routes.iter().enumerate().find(|(_, r)| {
        r.client_protocol.is_none_or(|p| p == req.client_protocol)
            && (r.tenant.is_none() || r.tenant == req.tenant)
            && (matches(&r.model) || r.aliases.iter().any(matches))
    }) else {
        return Err(CoreError::new(
            ErrorKind::NoRoute,
            "/model",
            format!("no route for model {:?} from an {} client", req.model, req.client_protocol),
        ));
    };
    let mut plan = Plan { route_id: route.id.clone(), attempts: Vec::new(), skipped: Vec::new(), unavailable: None };
    for (t, why) in target_order(&route.targets, req.seed) {
        let target = &route.targets[t];
        let provider = table.providers.iter().find(|p| p.name == target.provider).ok_or_else(|| {
            CoreError::invalid(
                format!("/table/routes/{ri}/targets/{t}/provider"),
                format!("no provider named {:?}", target.provider),
            )
        })?;
        let t32 = u32::try_from(t).map_err(|_| CoreError::invalid("/table/routes", "too many targets"))?;
        let (ready, skipped) = keys(provider, &req.health, req.seed);
        plan.skipped.extend(skipped.into_iter().map(|s| Skipped { target: t32, ..s }));
        for (spec, key_why) in ready {
            plan.attempts.push(Attempt {
                target: t32,
                provider: provider.name.clone(),
                key: spec.name.clone(),
                upstream_protocol: provider.protocol,
                upstream_model: target.upstream_model.clone().unwrap_or_else(|| req.model.clone()),
                reason: format!("target {t} ({why}), {key_why}"),
            });
        }
    }
    if plan.attempts.is_empty() {
        let limited = plan
            .skipped
            .iter()
            .any(|s| matches!(s.reason, Some(FailureClass::RateLimited | FailureClass::QuotaExhausted)));
        let back = plan.skipped.iter().map(|s| s.until_ms).min().unwrap_or(req.health.now_ms);
        plan.unavailable = Some(Unavailable {
            status: if limited { 429 } else { 503 },
            retry_after_ms: back.saturating_sub(req.health.now_ms),
            message: format!("every upstream key of route {:?} is cooling down", route.id),
        });
    }
    Ok(plan)
}
