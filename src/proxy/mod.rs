//! The HTTP proxy: config, run modes, upstream calls, the primary path, the
//! shadow executor and metrics.
//!
//! - [`app`] — the state and the router (`app(state)`), health, readiness, metrics, models.
//! - [`tenant`] — who a request belongs to, from its credentials.
//! - [`pipeline`] — one request: parse, route, convert, call the upstream, answer.
//! - [`primary`] — the primary module calls, with the explicit native fallback;
//!   [`offload`] runs the wasm ones off the executor, [`breaker`] takes a
//!   failing module off the guest for a while.
//! - [`stream`] — the stream pump between the upstream and the client.
//! - [`admin`] — the admin API.
//! - [`error`] — [`error::ApiError`], rendered in the client's protocol.

pub mod admin;
pub mod app;
pub mod breaker;
pub mod config;
pub mod error;
pub mod head;
pub mod metrics;
pub mod mode;
pub mod offload;
pub mod pipeline;
pub mod primary;
pub mod recorder;
pub mod routing;
pub mod shadow;
pub mod stages;
pub mod stream;
pub mod tenant;
pub mod upstream;

use crate::diff::{Differ, Ruleset, RulesetError};
use crate::record::Versions;
use crate::sink::redact::{KeyError, Redactor};
use crate::sink::{Sink, SinkRecord, SinkSender, SinkStats};
use app::AppState;
use shadowgate_core::Protocol;
use shadowgate_runtime::{LoadError, WasmConfig, WasmRuntime};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The guest did not load.
    #[error(transparent)]
    Guest(#[from] LoadError),
    /// The ruleset did not load.
    #[error(transparent)]
    Ruleset(#[from] RulesetError),
    /// No redaction key.
    #[error(transparent)]
    Redaction(#[from] KeyError),
    /// A config value cannot be used (the key names it).
    #[error("{key}: {message}")]
    Config {
        /// The config key.
        key: String,
        /// What is wrong.
        message: String,
    },
    /// The listen address cannot be bound.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The sink's folder cannot be used.
    #[error("sink.data_dir {dir}: {source}")]
    Sink {
        /// The folder.
        dir: String,
        /// Why.
        source: std::io::Error,
    },
    /// Serving failed.
    #[error("serving: {0}")]
    Io(#[from] std::io::Error),
}

impl ServeError {
    /// A config error at `key`.
    pub fn config(key: impl Into<String>, message: impl Into<String>) -> ServeError {
        ServeError::Config { key: key.into(), message: message.into() }
    }
}

/// Loads the guest named by the config (or the embedded one) with its sandbox limits.
pub fn load_guest(config: &config::Config) -> Result<Arc<WasmRuntime>, ServeError> {
    let wasm_cfg = WasmConfig {
        memory_limit_bytes: config.shadow.memory_limit_mb << 20,
        deadline: Duration::from_millis(config.shadow.deadline_ms),
        ..WasmConfig::default()
    };
    use shadowgate_runtime::Runtime as _;
    let wasm = match &config.shadow.guest {
        Some(p) => WasmRuntime::from_file(p, wasm_cfg)?,
        None => WasmRuntime::embedded(wasm_cfg)?,
    };
    check_guest_protocols(config, &wasm.capabilities().protocols)?;
    Ok(Arc::new(wasm))
}

/// A guest must speak every protocol a route serves: its client endpoint
/// (every endpoint, when the route names none) and its provider's.
pub fn check_guest_protocols(config: &config::Config, guest: &[String]) -> Result<(), ServeError> {
    for (i, r) in config.routes.iter().enumerate() {
        let clients: Vec<Protocol> = r.endpoint.map_or_else(|| Protocol::ALL.to_vec(), |p| vec![p]);
        let upstreams: Vec<Protocol> =
            r.targets().iter().filter_map(|t| config.provider(&t.provider)).map(|p| p.protocol).collect();
        for p in clients.into_iter().chain(upstreams) {
            if !guest.iter().any(|g| g == p.as_str()) {
                return Err(ServeError::config(
                    format!("routes[{i}]"),
                    format!(
                        "route {:?} needs protocol {p}, which the guest does not speak (it speaks {}): \
                         load a newer guest or pin the route's endpoint",
                        r.id,
                        guest.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(())
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
pub fn build(config: config::Config, wasm: Arc<WasmRuntime>, rec: Recording) -> Result<Arc<AppState>, ServeError> {
    let differ = Arc::new(Differ::new(Ruleset::load(None)?));
    let metrics = Arc::new(metrics::Metrics::new(&rec.stats));
    Ok(Arc::new(AppState::new(config, wasm, differ, rec, metrics)?))
}

/// Starts the Parquet writer for `config` with `redactor`; the recording to build the proxy with.
pub fn start_sink(
    config: &config::Config,
    wasm: &WasmRuntime,
    redactor: Arc<Redactor>,
) -> Result<(Recording, Sink), ServeError> {
    let opts = config.sink.options();
    let versions = Versions::current(wasm.module_sha256(), &opts.instance);
    let new_version = crate::sink::versions_changed(&opts.data_dir, &versions);
    let stats = SinkStats::default();
    let dir = opts.data_dir.display().to_string();
    let remote = config.sink.remote().map_err(|e| ServeError::config("sink.url", e.to_string()))?;
    let (sender, sink) = Sink::start(opts, versions, redactor.clone(), stats.clone(), remote)
        .map_err(|source| ServeError::Sink { dir, source })?;
    Ok((Recording { sink: sender, stats, redactor, new_version }, sink))
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| ServeError::Listen { addr, source })
}

/// Serves `state` on `addr` in a background task; returns the bound address.
pub async fn spawn(state: Arc<AppState>, addr: SocketAddr) -> Result<SocketAddr, ServeError> {
    let listener = bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(watch_state_file(Arc::downgrade(&state)));
    tokio::spawn(async move { axum::serve(listener, app::app(state)).await });
    Ok(bound)
}

/// Reloads module stages when the state file changes (`gate --apply`), until the state is gone.
async fn watch_state_file(state: std::sync::Weak<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    loop {
        tick.tick().await;
        let Some(st) = state.upgrade() else { return };
        st.modules.reload_if_changed();
    }
}

/// Starts the proxy from a config and serves until SIGTERM or SIGINT; then
/// stops accepting, finishes in-flight requests and drains the shadow queue.
pub async fn serve(config: config::Config, listen: Option<SocketAddr>) -> Result<(), ServeError> {
    let redactor = Arc::new(Redactor::from_env(&config.sink.pii_paths)?);
    let wasm = load_guest(&config)?;
    let addr: SocketAddr = match listen {
        Some(a) => a,
        None => config.listen.parse().map_err(|e| ServeError::config("listen", format!("{e}")))?,
    };
    let listener = bind(addr).await?;
    let (rec, sink) = start_sink(&config, &wasm, redactor)?;
    let data_dir = config.sink.data_dir.clone();
    let state = build(config, wasm, rec)?;
    tracing::info!(addr = %listener.local_addr()?, guest = %state.wasm.module_sha256(), data_dir = %data_dir.display(), "shadowgate serving");
    tokio::spawn(watch_state_file(Arc::downgrade(&state)));
    axum::serve(listener, app::app(state.clone())).with_graceful_shutdown(crate::signal::shutdown()).await?;
    shut_down(state, sink).await;
    Ok(())
}

/// Finishes in-flight streams, drains the shadow queue, then closes every Parquet file.
pub async fn shut_down(state: Arc<AppState>, sink: Sink) {
    tracing::info!("shutting down: finishing streams, draining the shadow queue and the sink");
    state.streams_done(Duration::from_secs(30)).await;
    tokio::task::block_in_place(|| state.shadow.drain());
    drop(state);
    let summary = tokio::task::block_in_place(|| sink.finish());
    tracing::info!(rows = ?summary.rows, files = ?summary.files, errors = summary.errors, "sink closed");
}
