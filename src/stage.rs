//! Promotion stages: the ladder a module climbs from `shadow` to `removed`.
//! Which runtime serves a module in each stage is the proxy's business
//! (`proxy::mode::Mode::of_stage`); the gate and the state file only step it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Promotion stages of a module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Native serves, wasm shadows.
    Shadow,
    /// A share of traffic is wasm-primary.
    Canary,
    /// Wasm serves, native shadows.
    Default,
    /// Wasm serves; the native path is kept only as the fallback and shadow.
    Deprecated,
    /// Wasm serves; native only as the explicit fallback.
    Removed,
}

impl Stage {
    /// All stages in promotion order.
    pub const ORDER: [Stage; 5] = [Stage::Shadow, Stage::Canary, Stage::Default, Stage::Deprecated, Stage::Removed];

    /// The stage's position in [`Stage::ORDER`] (the metrics gauge value).
    pub fn index(self) -> usize {
        Stage::ORDER.iter().position(|s| *s == self).unwrap_or(0)
    }

    /// One stage forward, or the same at the end.
    pub fn promote(self) -> Stage {
        Stage::ORDER[(self.index() + 1).min(Stage::ORDER.len() - 1)]
    }

    /// One stage back, or the same at the start.
    pub fn rollback(self) -> Stage {
        Stage::ORDER[self.index().saturating_sub(1)]
    }

    /// The name used in config and state files.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Shadow => "shadow",
            Stage::Canary => "canary",
            Stage::Default => "default",
            Stage::Deprecated => "deprecated",
            Stage::Removed => "removed",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_step_and_stop_at_the_ends() {
        assert_eq!(Stage::Shadow.promote(), Stage::Canary);
        assert_eq!(Stage::Shadow.rollback(), Stage::Shadow);
        assert_eq!(Stage::Removed.promote(), Stage::Removed);
        assert_eq!(Stage::Default.index(), 2);
    }
}
