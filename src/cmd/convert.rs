//! `convert`: run one conversion through either runtime, from stdin to stdout.

use super::{CmdError, CmdResult};
use serde_json::{Value, json};
use shadowgate_core::dispatch::open_envelope;
use shadowgate_core::{Context, CoreError, ErrorKind, Protocol};
use shadowgate_runtime::{
    CallError, NativeRuntime, Runtime, RuntimeError, RuntimeKind, WasmConfig, WasmRuntime, call_value, frame,
};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Which runtime runs the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuntimeArg {
    /// The core compiled into the host.
    Native,
    /// The wasm guest in wasmtime.
    Wasm,
}

/// Flags of `convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Source protocol: openai-chat or anthropic-messages.
    #[arg(long)]
    pub from: Protocol,
    /// Target protocol: openai-chat or anthropic-messages.
    #[arg(long)]
    pub to: Protocol,
    /// What stdin holds.
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Which runtime runs the core.
    #[arg(long, value_enum, default_value = "native")]
    pub runtime: RuntimeArg,
    /// A wasm guest to load instead of the embedded one (implies --runtime wasm).
    #[arg(long)]
    pub guest: Option<PathBuf>,
    /// Compat profile (default: the upstream protocol's).
    #[arg(long)]
    pub profile: Option<String>,
    /// Upstream model to put in a converted request.
    #[arg(long)]
    pub model: Option<String>,
    /// Request id the generated ids derive from.
    #[arg(long, default_value = "req_cli")]
    pub request_id: String,
    /// `created` timestamp (Unix seconds); default: now.
    #[arg(long)]
    pub created: Option<i64>,
    /// Streams to OpenAI clients: end with the usage chunk.
    #[arg(long)]
    pub include_usage: bool,
}

/// Converts stdin to stdout; exit 2 for bad input, 1 for a runtime failure.
pub fn run(a: Args) -> CmdResult {
    let kind = match (a.guest.is_some(), a.runtime) {
        (true, _) | (false, RuntimeArg::Wasm) => RuntimeKind::Wasm,
        (false, RuntimeArg::Native) => RuntimeKind::Native,
    };
    let rt = build_runtime(kind, a.guest.as_deref())?;
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let ctx =
        Context { request_id: a.request_id, created: a.created.unwrap_or_else(crate::clock::now_secs), id_seed: 0 };
    let opts = ConvertOptions {
        from: a.from,
        to: a.to,
        kind: a.kind,
        ctx,
        profile: a.profile,
        model: a.model,
        include_usage: a.include_usage,
    };
    let stdout = std::io::stdout();
    match convert(rt.as_ref(), &opts, &input, &mut stdout.lock()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) => Err(CmdError { message: e.to_string(), code: e.exit_code() }),
    }
}

/// What is being converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// A client request (client protocol `--from` → upstream protocol `--to`).
    Request,
    /// A non-streaming upstream response (upstream `--from` → client `--to`).
    Response,
    /// Raw upstream SSE (upstream `--from` → client SSE `--to`).
    Stream,
}

/// Options of one conversion.
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Source protocol.
    pub from: Protocol,
    /// Target protocol.
    pub to: Protocol,
    /// Request, response or stream.
    pub kind: Kind,
    /// Context for ids and timestamps.
    pub ctx: Context,
    /// Compat profile name.
    pub profile: Option<String>,
    /// Upstream model replacing the request's model.
    pub model: Option<String>,
    /// OpenAI clients: send the final usage chunk.
    pub include_usage: bool,
}

/// Why a conversion failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The input is bad (exit code 2).
    #[error("{0}")]
    Input(CoreError),
    /// The runtime failed (exit code 1).
    #[error("{0}")]
    Runtime(RuntimeError),
    /// Writing the output failed.
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

impl ConvertError {
    /// The process exit code: 2 for bad input, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            ConvertError::Input(_) => 2,
            _ => 1,
        }
    }
}

impl From<CallError> for ConvertError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Core(e) => ConvertError::Input(e),
            CallError::Runtime(e) => ConvertError::Runtime(e),
        }
    }
}

/// Builds the runtime `kind`, loading `guest` instead of the embedded guest when given.
pub fn build_runtime(kind: RuntimeKind, guest: Option<&Path>) -> Result<Box<dyn Runtime>, CmdError> {
    Ok(match (kind, guest) {
        (RuntimeKind::Native, None) => Box::new(NativeRuntime::new()),
        (RuntimeKind::Native, Some(_)) => return Err(CmdError::input("--guest needs --runtime wasm")),
        (RuntimeKind::Wasm, None) => Box::new(WasmRuntime::embedded(WasmConfig::default())?),
        (RuntimeKind::Wasm, Some(p)) => Box::new(WasmRuntime::from_file(p, WasmConfig::default())?),
    })
}

/// Converts `input` and writes the result to `out`.
pub fn convert(rt: &dyn Runtime, opts: &ConvertOptions, input: &[u8], out: &mut dyn Write) -> Result<(), ConvertError> {
    let (from, to) = (opts.from.as_str(), opts.to.as_str());
    match opts.kind {
        Kind::Request | Kind::Response => {
            let (op, header) = if opts.kind == Kind::Request {
                ("compat.request", json!({"from": from, "to": to, "profile": opts.profile, "model": opts.model}))
            } else {
                ("compat.response", json!({"ctx": opts.ctx, "from": from, "to": to, "profile": opts.profile}))
            };
            let value = call_value(rt, op, &frame(&header, input))?;
            let pretty: Value =
                serde_json::from_str(value.get()).map_err(|e| ConvertError::Input(CoreError::json(&e)))?;
            serde_json::to_writer_pretty(&mut *out, &pretty).map_err(std::io::Error::other)?;
            writeln!(out)?;
        }
        Kind::Stream => {
            let options = json!({"ctx": opts.ctx, "from": from, "to": to, "include_usage": opts.include_usage});
            let mut stream = rt.open_stream(options.to_string().as_bytes()).map_err(ConvertError::Runtime)?;
            for chunk in input.chunks(16 << 10) {
                let env = stream.feed(chunk).map_err(ConvertError::Runtime)?;
                write_sse(&env, out)?;
            }
            let env = stream.close().map_err(ConvertError::Runtime)?;
            let closed: Value = match open_envelope(&env) {
                Ok(raw) => serde_json::from_str(raw.get()).unwrap_or(Value::Null),
                Err(e) => return Err(ConvertError::Input(e)),
            };
            out.write_all(closed["out"].as_str().unwrap_or("").as_bytes())?;
            out.flush()?;
            // An upstream error event is converted faithfully; a broken stream is bad input.
            if let Some(err) = closed.get("error").filter(|e| !e.is_null()) {
                let kind = err["kind"].as_str().and_then(ErrorKind::parse).unwrap_or(ErrorKind::Stream);
                if kind != ErrorKind::Upstream {
                    return Err(ConvertError::Input(CoreError::new(kind, "", err["message"].as_str().unwrap_or(""))));
                }
            }
        }
    }
    Ok(())
}

fn write_sse(env: &[u8], out: &mut dyn Write) -> Result<(), ConvertError> {
    let raw = open_envelope(env).map_err(ConvertError::Input)?;
    let text: String = serde_json::from_str(raw.get()).map_err(|e| ConvertError::Input(CoreError::json(&e)))?;
    out.write_all(text.as_bytes())?;
    Ok(())
}
