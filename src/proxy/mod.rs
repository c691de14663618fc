//! The HTTP proxy: config, run modes, upstream calls, the primary path, the
//! shadow executor and metrics.

pub mod config;
pub mod metrics;
pub mod mode;
pub mod record;
pub mod server;
pub mod shadow;
pub mod stages;
pub mod upstream;

use crate::diff::{Differ, Ruleset};
use crate::runtime::{WasmConfig, WasmRuntime};
use crate::sink::redact::Redactor;
use crate::sink::{Sink, SinkRecord, SinkSender, SinkStats, Versions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
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

/// Where a proxy's records go and how cases are redacted.
pub struct Recording {
    /// The sink's channel.
    pub sink: SinkSender,
    /// The sink's counters (exported in `/metrics`).
    pub stats: SinkStats,
    /// Redacts cases before they leave the shadow worker.
    pub redactor: Arc<Redactor>,
    /// A new guest or core version: sampling is boosted for a while.
    pub new_version: bool,
}

impl Recording {
    /// Records to a channel (tests, embedding), redacted under an ephemeral key.
    pub fn channel(capacity: usize) -> (Recording, Receiver<SinkRecord>) {
        let stats = SinkStats::default();
        let (sink, rx) = SinkSender::channel(capacity, stats.clone());
        (Recording { sink, stats, redactor: Arc::new(Redactor::ephemeral(&[])), new_version: false }, rx)
    }
}

/// Builds the app state; every diff record and sampled case goes to `rec`.
pub fn build(config: config::Config, wasm: Arc<WasmRuntime>, rec: Recording) -> anyhow::Result<Arc<server::AppState>> {
    let differ = Arc::new(Differ::new(Ruleset::load(None)?));
    let metrics = Arc::new(metrics::Metrics::new(&rec.stats));
    Ok(Arc::new(server::AppState::new(config, wasm, differ, rec, metrics)?))
}

/// Starts the Parquet writer for `config` with `redactor`; the recording to build the proxy with.
pub fn start_sink(
    config: &config::Config,
    wasm: &WasmRuntime,
    redactor: Arc<Redactor>,
) -> anyhow::Result<(Recording, Sink)> {
    let opts = config.sink.options();
    let versions = Versions::current(wasm.module_sha256(), &opts.instance);
    let new_version = crate::sink::versions_changed(&opts.data_dir, &versions);
    let stats = SinkStats::default();
    let data_dir = opts.data_dir.clone();
    let (sender, sink) = Sink::start(opts, versions, redactor.clone(), stats.clone())
        .map_err(|e| anyhow::anyhow!("sink.data_dir {}: {e}", data_dir.display()))?;
    Ok((Recording { sink: sender, stats, redactor, new_version }, sink))
}

/// Serves `state` on `addr` in a background task; returns the bound address.
pub async fn spawn(state: Arc<server::AppState>, addr: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(watch_state_file(Arc::downgrade(&state)));
    tokio::spawn(async move { axum::serve(listener, server::app(state)).await });
    Ok(bound)
}

/// Reloads module stages when the state file changes (`gate --apply`), until the state is gone.
async fn watch_state_file(state: std::sync::Weak<server::AppState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(st) = state.upgrade() else { return };
        st.modules.reload_if_changed();
    }
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
    let redactor = Arc::new(Redactor::from_env(&config.sink.pii_paths)?);
    let wasm = load_guest(&config)?;
    let addr: SocketAddr = match listen {
        Some(a) => a,
        None => config.listen.parse()?,
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let (rec, sink) = start_sink(&config, &wasm, redactor)?;
    let data_dir = config.sink.data_dir.clone();
    let state = build(config, wasm, rec)?;
    tracing::info!(addr = %listener.local_addr()?, guest = %state.wasm.module_sha256(), data_dir = %data_dir.display(), "shadowgate serving");
    tokio::spawn(watch_state_file(Arc::downgrade(&state)));
    axum::serve(listener, server::app(state.clone())).with_graceful_shutdown(shutdown_signal()).await?;
    shut_down(state, sink).await;
    Ok(())
}

/// Finishes in-flight streams, drains the shadow queue, then closes every Parquet file.
pub async fn shut_down(state: Arc<server::AppState>, sink: Sink) {
    tracing::info!("shutting down: finishing streams, draining the shadow queue and the sink");
    state.streams_done(Duration::from_secs(30)).await;
    tokio::task::block_in_place(|| state.shadow.drain());
    drop(state);
    let summary = tokio::task::block_in_place(|| sink.finish());
    tracing::info!(rows = ?summary.rows, files = ?summary.files, errors = summary.errors, "sink closed");
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
