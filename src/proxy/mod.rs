//! The HTTP proxy: config, run modes, upstream calls, the primary path, the
//! shadow executor and metrics.

pub mod config;
pub mod metrics;
pub mod mode;
pub mod server;
pub mod shadow;
pub mod upstream;

use crate::diff::{Differ, Ruleset};
use crate::runtime::{WasmConfig, WasmRuntime};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Loads the guest named by the config (or the embedded one) with its sandbox limits.
pub fn load_guest(config: &config::Config) -> anyhow::Result<Arc<WasmRuntime>> {
    let wasm_cfg = WasmConfig {
        memory_limit_bytes: config.shadow.memory_limit_mb << 20,
        deadline: Duration::from_millis(config.shadow.deadline_ms),
        ..WasmConfig::default()
    };
    Ok(Arc::new(match &config.shadow.guest {
        Some(p) => WasmRuntime::from_file(p, wasm_cfg)?,
        None => WasmRuntime::embedded(wasm_cfg)?,
    }))
}

/// Builds the app state; every diff record goes to `records`.
pub fn build(
    config: config::Config,
    wasm: Arc<WasmRuntime>,
    records: std::sync::mpsc::SyncSender<shadow::DiffRecord>,
) -> anyhow::Result<Arc<server::AppState>> {
    let differ = Arc::new(Differ::new(Ruleset::load(None)?));
    let metrics = Arc::new(metrics::Metrics::new());
    Ok(Arc::new(server::AppState::new(config, wasm, differ, records, metrics)?))
}

/// Serves `state` on `addr` in a background task; returns the bound address.
pub async fn spawn(state: Arc<server::AppState>, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, server::app(state)).await });
    Ok(bound)
}

/// Serves the mock upstream with `cases` on `addr` in a background task; returns the bound address.
pub async fn spawn_mock(cases: Vec<crate::case::Case>, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, crate::mock::app(Arc::new(crate::mock::Mock::new(cases)))).await });
    Ok(bound)
}

/// Starts the proxy from a config and serves until SIGTERM or SIGINT; then
/// stops accepting, finishes in-flight requests and drains the shadow queue.
pub async fn serve(config: config::Config, listen: Option<SocketAddr>) -> anyhow::Result<()> {
    let wasm = load_guest(&config)?;
    let (records, rx) = std::sync::mpsc::sync_channel::<shadow::DiffRecord>(8192);
    let logger = std::thread::Builder::new().name("shadowgate-records".into()).spawn(move || {
        for r in rx {
            if !r.result.agrees() {
                tracing::info!(request_id = %r.dims.request_id, module = %r.result.module, outcome = r.result.outcome.as_str(),
                    class = r.result.class.map(|c| c.as_str()), rule = r.result.rule.as_deref(), paths = ?r.result.paths, "shadow divergence");
            }
        }
    })?;
    let addr: SocketAddr = match listen {
        Some(a) => a,
        None => config.listen.parse()?,
    };
    let state = build(config, wasm, records)?;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(addr = %listener.local_addr()?, guest = %state.wasm.module_sha256(), "shadowgate serving");
    axum::serve(listener, server::app(state.clone())).with_graceful_shutdown(shutdown_signal()).await?;
    tracing::info!("shutting down: draining the shadow queue");
    state.shadow.drain();
    drop(state);
    let _ = logger.join();
    Ok(())
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}

/// Serves the mock upstream until SIGTERM or SIGINT.
pub async fn serve_mock(listen: SocketAddr, cases: Option<PathBuf>) -> anyhow::Result<()> {
    let cases = match cases {
        Some(dir) => crate::case::load(&dir)?,
        None => Vec::new(),
    };
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(addr = %listener.local_addr()?, cases = cases.len(), "mock upstream serving");
    let app = crate::mock::app(Arc::new(crate::mock::Mock::new(cases)));
    axum::serve(listener, app).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}
