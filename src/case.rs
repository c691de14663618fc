//! The readable case format: one recorded exchange that every runtime can
//! replay. One JSON object per `.json` file, or one per line in `.jsonl`.
//!
//! ```json
//! {"id": "text-basic", "client_protocol": "openai-chat", "upstream_protocol": "anthropic-messages",
//!  "request": {...client request...},
//!  "upstream_response": {"status": 200, "body": {...}}      // or
//!  "upstream_stream": "event: message_start\ndata: {...}\n\n...",
//!  "tenant": "acme", "route": "claude", "headers": {"x-mock-script": "text"}}
//! ```

use serde::{Deserialize, Serialize};
use serde_json::Value;
use shadowgate_core::{Context, Protocol};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A recorded upstream response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: u16,
    /// Body: JSON, or a string for a non-JSON body.
    pub body: Value,
    /// Response headers worth keeping (e.g. `retry-after`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// What routing saw when the case was served: the `routing.resolve` query
/// (request, route table, health snapshot, seed) and each `routing.next`
/// query after a failed attempt, as the core's inputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseRouting {
    /// The `routing.resolve` query.
    pub resolve: Value,
    /// The `routing.next` queries, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub next: Vec<Value>,
}

/// One replayable case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// Unique id.
    pub id: String,
    /// What the case shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Client protocol.
    pub client_protocol: Protocol,
    /// Upstream protocol.
    pub upstream_protocol: Protocol,
    /// The client's request body.
    pub request: Value,
    /// The upstream's non-streaming answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_response: Option<UpstreamResponse>,
    /// The upstream's raw SSE, as received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_stream: Option<String>,
    /// Model sent upstream, when routing replaced it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_model: Option<String>,
    /// Tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Route id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Upstream compat profile (default: the upstream protocol's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    /// The context ids and timestamps derive from (recorded cases carry the live one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<Context>,
    /// Request headers (redacted).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The routing queries it was served with (replay builds a one-route table without).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing: Option<CaseRouting>,
}

/// A case file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct CaseError {
    /// File.
    pub file: String,
    /// Line, for `.jsonl` files and JSON syntax errors.
    pub line: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl Case {
    /// The recorded context, or a fixed one derived from the id (same ids on every replay).
    pub fn context(&self) -> Context {
        self.context.clone().unwrap_or_else(|| Context {
            request_id: self.id.clone(),
            created: 1_700_000_000,
            id_seed: 1,
        })
    }

    /// Checks that exactly one upstream answer is present (protocols are typed).
    fn validate(&self) -> Result<(), String> {
        match (&self.upstream_response, &self.upstream_stream) {
            (Some(_), None) | (None, Some(_)) => Ok(()),
            _ => Err(format!("case {:?} needs exactly one of upstream_response and upstream_stream", self.id)),
        }
    }
}

fn parse_one(text: &str, file: &str, line: Option<usize>) -> Result<Case, CaseError> {
    let case: Case = serde_json::from_str(text).map_err(|e| CaseError {
        file: file.into(),
        line: Some(line.unwrap_or(0) + e.line()),
        message: e.to_string(),
    })?;
    case.validate().map_err(|message| CaseError { file: file.into(), line, message })?;
    Ok(case)
}

/// Reads one case file (`.json`: one case; `.jsonl`: one per line).
pub fn load_file(path: &Path) -> Result<Vec<Case>, CaseError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CaseError {
        file: file.clone(),
        line: None,
        message: e.to_string(),
    })?;
    if path.extension().is_some_and(|e| e == "jsonl") {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| parse_one(l, &file, Some(i)))
            .collect()
    } else {
        Ok(vec![parse_one(&text, &file, None)?])
    }
}

/// Reads a case file, or every `.json`/`.jsonl` file of a folder (sorted by name).
/// Ids must be unique.
pub fn load(path: &Path) -> Result<Vec<Case>, CaseError> {
    let err = |message: String| CaseError { file: path.display().to_string(), line: None, message };
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| err(e.to_string()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "json" || e == "jsonl"))
            .collect();
        f.sort();
        f
    } else if path.is_file() {
        vec![path.to_path_buf()]
    } else {
        return Err(err("no such file or folder".into()));
    };
    let mut cases = Vec::new();
    for f in files {
        cases.extend(load_file(&f)?);
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(dup) = cases.iter().find(|c| !seen.insert(c.id.clone())) {
        return Err(err(format!("duplicate case id {:?}", dup.id)));
    }
    Ok(cases)
}
