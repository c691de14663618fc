//! Run modes and their resolution: global, then tenant, then route, then the
//! request header — each level overrides the one before unless that one is
//! locked. A module's promotion stage decides when no level sets a mode.

use crate::stage::Stage;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use shadowgate_runtime::RuntimeKind;
use std::fmt;
use std::str::FromStr;

/// How a request is served and shadowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Mode {
    /// Native serves; no shadow.
    NativePrimary,
    /// Native serves; wasm shadows.
    Shadow,
    /// Wasm serves (native on failure); native shadows.
    WasmPrimary,
    /// P% of requests wasm-primary (sticky by hash), the rest shadow.
    Split(u8),
}

impl Mode {
    /// The mode a module's stage implies.
    pub fn of_stage(stage: Stage, canary_percent: u8) -> Mode {
        match stage {
            Stage::Shadow => Mode::Shadow,
            Stage::Canary => Mode::Split(canary_percent),
            Stage::Default | Stage::Deprecated | Stage::Removed => Mode::WasmPrimary,
        }
    }
}

/// A mode name that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid mode {0:?} (expected native_primary, shadow, wasm_primary or split:P with P in 0..=100)")]
pub struct InvalidMode(pub String);

impl FromStr for Mode {
    type Err = InvalidMode;
    fn from_str(s: &str) -> Result<Mode, InvalidMode> {
        Ok(match s {
            "native_primary" => Mode::NativePrimary,
            "shadow" => Mode::Shadow,
            "wasm_primary" => Mode::WasmPrimary,
            _ => match s.strip_prefix("split:").map(str::parse::<u8>) {
                Some(Ok(p)) if p <= 100 => Mode::Split(p),
                _ => return Err(InvalidMode(s.into())),
            },
        })
    }
}

impl TryFrom<String> for Mode {
    type Error = InvalidMode;
    fn try_from(s: String) -> Result<Mode, InvalidMode> {
        s.parse()
    }
}

impl From<Mode> for String {
    fn from(m: Mode) -> String {
        m.to_string()
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::NativePrimary => f.write_str("native_primary"),
            Mode::Shadow => f.write_str("shadow"),
            Mode::WasmPrimary => f.write_str("wasm_primary"),
            Mode::Split(p) => write!(f, "split:{p}"),
        }
    }
}

/// A mode set at one level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Setting {
    /// The mode.
    pub mode: Mode,
    /// Later levels may not override it.
    pub locked: bool,
}

/// Where the effective mode came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// The module stages.
    Stage,
    /// The global setting.
    Global,
    /// The tenant's setting.
    Tenant,
    /// The route's setting.
    Route,
    /// The `x-shadowgate-mode` header.
    Request,
}

/// The outcome of resolution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolution {
    /// The mode, or `None` when module stages decide per module.
    pub mode: Option<Mode>,
    /// Which level decided.
    pub level: Level,
    /// Whether the deciding level is locked.
    pub locked: bool,
    /// A request header that was ignored because a level above is locked.
    pub header_ignored: bool,
}

/// The request asked for a mode it may not set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant {0:?} may not set x-shadowgate-mode")]
pub struct Forbidden(pub String);

/// Resolves the mode of a request.
pub fn resolve(
    global: Option<Setting>,
    tenant: Option<Setting>,
    route: Option<Setting>,
    header: Option<Mode>,
    header_allowed: bool,
    tenant_name: &str,
) -> Result<Resolution, Forbidden> {
    let mut res = Resolution { mode: None, level: Level::Stage, locked: false, header_ignored: false };
    for (level, setting) in [(Level::Global, global), (Level::Tenant, tenant), (Level::Route, route)] {
        if let Some(s) = setting {
            if res.locked {
                continue;
            }
            res = Resolution { mode: Some(s.mode), level, locked: s.locked, header_ignored: false };
        }
    }
    if let Some(m) = header {
        if !header_allowed {
            return Err(Forbidden(tenant_name.into()));
        }
        if res.locked {
            res.header_ignored = true;
        } else {
            res = Resolution { mode: Some(m), level: Level::Request, locked: false, header_ignored: false };
        }
    }
    Ok(res)
}

/// Which runtimes serve and shadow one module call under `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runtimes {
    /// Serves the client.
    pub primary: RuntimeKind,
    /// Re-runs off the request path, if any.
    pub shadow: Option<RuntimeKind>,
}

/// The runtimes of `mode` for the request whose sticky key is `key`.
pub fn runtimes(mode: Mode, key: &str) -> Runtimes {
    let wasm_first = match mode {
        Mode::NativePrimary | Mode::Shadow => false,
        Mode::WasmPrimary => true,
        Mode::Split(p) => bucket(key) < u32::from(p),
    };
    match (mode, wasm_first) {
        (Mode::NativePrimary, _) => Runtimes { primary: RuntimeKind::Native, shadow: None },
        (_, true) => Runtimes { primary: RuntimeKind::Wasm, shadow: Some(RuntimeKind::Native) },
        (_, false) => Runtimes { primary: RuntimeKind::Native, shadow: Some(RuntimeKind::Wasm) },
    }
}

/// A stable bucket in 0..100 for a sticky key.
pub fn bucket(key: &str) -> u32 {
    let d = Sha256::digest(key.as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]]) % 100
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(mode: Mode, locked: bool) -> Option<Setting> {
        Some(Setting { mode, locked })
    }

    #[test]
    fn later_levels_override_unless_locked() {
        let r = resolve(set(Mode::Shadow, false), set(Mode::WasmPrimary, false), None, None, false, "t").unwrap();
        assert_eq!((r.mode, r.level), (Some(Mode::WasmPrimary), Level::Tenant));
        let r = resolve(
            set(Mode::Shadow, false),
            set(Mode::WasmPrimary, true),
            set(Mode::NativePrimary, false),
            None,
            false,
            "t",
        )
        .unwrap();
        assert_eq!((r.mode, r.level, r.locked), (Some(Mode::WasmPrimary), Level::Tenant, true));
        let r = resolve(None, None, None, None, false, "t").unwrap();
        assert_eq!((r.mode, r.level), (None, Level::Stage));
    }

    #[test]
    fn locked_global_native_primary_wins_over_everything() {
        let r = resolve(
            set(Mode::NativePrimary, true),
            set(Mode::WasmPrimary, true),
            set(Mode::Split(50), false),
            Some(Mode::WasmPrimary),
            true,
            "t",
        )
        .unwrap();
        assert_eq!((r.mode, r.level, r.header_ignored), (Some(Mode::NativePrimary), Level::Global, true));
    }

    #[test]
    fn the_header_needs_permission() {
        assert_eq!(resolve(None, None, None, Some(Mode::WasmPrimary), false, "acme"), Err(Forbidden("acme".into())));
        let r = resolve(set(Mode::Shadow, false), None, None, Some(Mode::WasmPrimary), true, "acme").unwrap();
        assert_eq!((r.mode, r.level), (Some(Mode::WasmPrimary), Level::Request));
    }

    #[test]
    fn split_is_sticky_and_close_to_its_share() {
        assert_eq!(runtimes(Mode::Split(30), "req-1"), runtimes(Mode::Split(30), "req-1"));
        let wasm =
            (0..10_000).filter(|i| runtimes(Mode::Split(30), &format!("req-{i}")).primary == RuntimeKind::Wasm).count();
        assert!((2_700..3_300).contains(&wasm), "{wasm}");
        assert_eq!(runtimes(Mode::Split(0), "x").primary, RuntimeKind::Native);
        assert_eq!(runtimes(Mode::Split(100), "x").primary, RuntimeKind::Wasm);
        assert_eq!(runtimes(Mode::NativePrimary, "x").shadow, None);
    }

    #[test]
    fn modes_parse_and_stages_step() {
        assert_eq!("split:25".parse::<Mode>(), Ok(Mode::Split(25)));
        assert!("split:101".parse::<Mode>().is_err() && "fast".parse::<Mode>().is_err());
        assert_eq!(Mode::of_stage(Stage::Canary, 10), Mode::Split(10));
    }
}
