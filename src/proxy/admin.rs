//! The admin API: modes, module stages, stage changes. Every endpoint needs
//! `authorization: Bearer <admin token>`.

use super::app::AppState;
use super::error::AdminError;
use super::primary::module_mode;
use super::tenant;
use crate::gate::Thresholds;
use crate::stage::Stage;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use shadowgate_core::Module;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Checks `authorization: Bearer <admin token>` in constant time.
pub fn authorized(st: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = &st.admin_token else { return false };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let (a, b) = (Sha256::digest(given.as_bytes()), Sha256::digest(token.as_bytes()));
    a.iter().zip(b.iter()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn check(st: &AppState, headers: &HeaderMap) -> Result<(), AdminError> {
    if st.admin_token.is_none() {
        return Err(AdminError::new(
            StatusCode::FORBIDDEN,
            "the admin API is disabled by configuration: set admin_token_env to the variable holding its token",
        ));
    }
    if authorized(st, headers) {
        Ok(())
    } else {
        Err(AdminError::new(StatusCode::FORBIDDEN, "admin token required (authorization: Bearer …)"))
    }
}

/// `GET /admin/modes?tenant=…&route=…&mode=…`: how a request would be resolved.
pub async fn modes(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, AdminError> {
    check(&st, &headers)?;
    let cfg = &st.config;
    let tenant = tenant::by_name(cfg, q.get("tenant").map_or("default", String::as_str));
    let route = q.get("route").and_then(|id| cfg.routes.iter().find(|r| &r.id == id));
    let header_mode = q.get("mode").and_then(|m| m.parse().ok());
    let body = match tenant::resolve(cfg, &tenant, route, header_mode) {
        Ok(r) => {
            let modules: BTreeMap<&str, String> =
                Module::ALL.iter().map(|m| (m.as_str(), module_mode(&st, &r, *m).to_string())).collect();
            json!({"tenant": tenant.name, "route": route.map(|r| r.id.clone()), "resolution": r, "modules": modules,
                   "stages": st.modules.all()})
        }
        Err(e) => json!({"tenant": tenant.name, "error": e.to_string()}),
    };
    Ok(axum::Json(body).into_response())
}

/// `GET /admin/upstreams`: every provider key (by name) with its cap, in-flight count, failure streak and cooldown.
pub async fn upstreams(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, AdminError> {
    check(&st, &headers)?;
    Ok(axum::Json(st.health.view(super::routing::now_ms())).into_response())
}

/// `GET /admin/modules`: stages, rolling windows, thresholds and recent history.
pub async fn modules(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Result<Response, AdminError> {
    check(&st, &headers)?;
    let thresholds: BTreeMap<&str, Thresholds> =
        Module::ALL.iter().map(|m| (m.as_str(), st.modules.thresholds(*m))).collect();
    Ok(axum::Json(json!({"stages": st.modules.all(), "windows": st.modules.windows(), "thresholds": thresholds,
                         "breakers": st.breakers.views(), "history": st.modules.history(50)}))
    .into_response())
}

/// `POST /admin/modules/<module>` with `{"stage": "canary"}` or `{"action": "promote" | "rollback"}`.
pub async fn set_module(
    State(st): State<Arc<AppState>>,
    Path(module): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AdminError> {
    check(&st, &headers)?;
    let bad = |status: StatusCode, msg: String| AdminError::new(status, msg);
    let module: Module =
        module.parse().map_err(|_| bad(StatusCode::NOT_FOUND, format!("unknown module {module:?}")))?;
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let current = st.modules.get(module);
    let to = match (req["stage"].as_str(), req["action"].as_str()) {
        (Some(s), None) => serde_json::from_value::<Stage>(json!(s))
            .map_err(|_| bad(StatusCode::BAD_REQUEST, format!("unknown stage {s:?}")))?,
        (None, Some("promote")) => current.promote(),
        (None, Some("rollback")) => current.rollback(),
        _ => {
            return Err(bad(
                StatusCode::BAD_REQUEST,
                "body must be {\"stage\": …} or {\"action\": \"promote\"|\"rollback\"}".into(),
            ));
        }
    };
    let reason = req["reason"].as_str().unwrap_or("admin request").to_string();
    // The state file is written with fsyncs under a lock: off the async executor.
    let modules = st.modules.clone();
    let set = tokio::task::spawn_blocking(move || modules.set(module, to, "admin", &reason))
        .await
        .map_err(|e| bad(StatusCode::INTERNAL_SERVER_ERROR, format!("setting the stage: {e}")))?;
    match set {
        Ok(from) => {
            tracing::info!(module = %module, from = ?from, to = ?to, "stage set by the admin API");
            Ok(axum::Json(json!({"module": module, "from": from, "stage": to})).into_response())
        }
        Err(e) => Err(bad(StatusCode::INTERNAL_SERVER_ERROR, format!("writing the state file: {e}"))),
    }
}
