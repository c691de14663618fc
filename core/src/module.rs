//! The modules a team migrates and promotes one by one: the one catalog the
//! host's stages, metrics, records, gate, reports and plans all use.

use crate::{compat, routing, streaming, tokenizer, tools};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A versioned module of the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Module {
    /// Route selection.
    Routing,
    /// Tool canonicalization.
    Tools,
    /// Request/response/error conversion with provider compat fixes.
    Compat,
    /// SSE stream conversion.
    Streaming,
    /// Token accounting.
    Tokenizer,
}

impl Module {
    /// Every module, in a stable order.
    pub const ALL: [Module; 5] = [Module::Routing, Module::Tools, Module::Compat, Module::Streaming, Module::Tokenizer];

    /// The name used everywhere (config keys, metrics labels, records).
    pub const fn as_str(self) -> &'static str {
        match self {
            Module::Routing => "routing",
            Module::Tools => "tools",
            Module::Compat => "compat",
            Module::Streaming => "streaming",
            Module::Tokenizer => "tokenizer",
        }
    }

    /// The module's version in this core.
    pub const fn version(self) -> &'static str {
        match self {
            Module::Routing => routing::VERSION,
            Module::Tools => tools::VERSION,
            Module::Compat => compat::VERSION,
            Module::Streaming => streaming::VERSION,
            Module::Tokenizer => tokenizer::VERSION,
        }
    }

    /// The names of every module, comma-separated (for error messages).
    pub fn names() -> String {
        Module::ALL.map(Module::as_str).join(", ")
    }
}

impl fmt::Display for Module {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A name that is not a module.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown module {0:?} (known: {names})", names = Module::names())]
pub struct UnknownModule(pub String);

impl FromStr for Module {
    type Err = UnknownModule;
    fn from_str(s: &str) -> Result<Module, UnknownModule> {
        Module::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| UnknownModule(s.into()))
    }
}
