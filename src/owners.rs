//! Who fixes a module and where: `[owners.<module>]` in the config, shown by
//! `report`, `gate` (and its JSON verdict), `show` and the HTML page next to
//! each module's diffs. The core's module list stays the list of modules: an
//! owner of a module the core does not have is a config error.
//!
//! ```toml
//! [owners.compat]
//! team = "llm-gateway"
//! fix_path = "core/src/compat/"
//! runbook = "https://runbooks.example.com/shadowgate/compat"
//! ```

use crate::toml_error::Invalid;
use serde::{Deserialize, Serialize};
use shadowgate_core::Module;
use std::collections::BTreeMap;

/// The owner of one module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// The team that fixes it.
    pub team: String,
    /// Where fixes go (a path in the repository).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix_path: Option<String>,
    /// Runbook URL (`https://…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runbook: Option<String>,
}

impl Owner {
    /// `team (fix_path) runbook`, for text output.
    pub fn text(&self) -> String {
        let mut s = self.team.clone();
        if let Some(p) = &self.fix_path {
            s += &format!(" ({p})");
        }
        if let Some(r) = &self.runbook {
            s += &format!(" {r}");
        }
        s
    }
}

/// The ownership table, by module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Owners(pub BTreeMap<Module, Owner>);

impl Owners {
    /// The owner of `module`, if configured.
    pub fn of(&self, module: Module) -> Option<&Owner> {
        self.0.get(&module)
    }

    /// The owner of the module named `name`, if it is a module and has one.
    pub fn named(&self, name: &str) -> Option<&Owner> {
        name.parse().ok().and_then(|m| self.of(m))
    }

    /// Teams are named, runbooks are web addresses.
    pub fn validate(&self) -> Result<(), Invalid> {
        for (m, o) in &self.0 {
            if o.team.trim().is_empty() {
                return Err(Invalid::new(format!("owners.{m}.team"), "a team is named"));
            }
            if let Some(r) = &o.runbook
                && !(r.starts_with("https://") || r.starts_with("http://"))
            {
                return Err(Invalid::new(format!("owners.{m}.runbook"), format!("{r:?} is not an http(s) URL")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_keyed_by_the_cores_modules() {
        let o: BTreeMap<String, Owners> = toml::from_str(
            "[owners.compat]\nteam = \"gw\"\nfix_path = \"core/src/compat/\"\nrunbook = \"https://rb/compat\"\n",
        )
        .unwrap();
        let o = &o["owners"];
        assert_eq!(o.of(Module::Compat).unwrap().text(), "gw (core/src/compat/) https://rb/compat");
        assert_eq!(o.named("compat"), o.of(Module::Compat));
        assert!(o.of(Module::Tools).is_none() && o.named("nope").is_none());
        assert!(o.validate().is_ok());
        let err = toml::from_str::<BTreeMap<String, Owners>>("[owners.compats]\nteam = \"gw\"\n").unwrap_err();
        assert!(err.to_string().contains("compats"), "{err}");
        let bad: BTreeMap<String, Owners> =
            toml::from_str("[owners.tools]\nteam = \"gw\"\nrunbook = \"wiki/tools\"\n").unwrap();
        assert_eq!(bad["owners"].validate().unwrap_err().key, "owners.tools.runbook");
    }
}
