//! The variable forms of the flags of `build`, `pull`, `push`, `sign` and
//! `verify` (`APPTAINER_FORCE` for `--force`, in the persona's prefix
//! order), and the refusals and warnings of the flags Vessel does not
//! honour, worded by the compatibility table (`crate::compat`).

use anyhow::{bail, Result};
use vessel_config::{lookup, lookup_bool, EnvValue, EnvVar, Tool};

use crate::compat;

/// The variables of one command.
pub struct Env {
    pub tool: Tool,
    /// The command, as the compatibility table names it.
    pub command: &'static str,
}

impl Env {
    pub fn new(tool: Tool, command: &'static str) -> Self {
        Env { tool, command }
    }

    fn get(&self, var: EnvVar) -> Option<EnvValue> {
        lookup(self.tool, var, vessel_config::process_var).value
    }

    /// A boolean flag: given, or one of its variables true.
    pub fn flag(&self, given: bool, vars: &[EnvVar]) -> bool {
        given
            || vars.iter().any(|v| {
                self.get(*v)
                    .and_then(|f| lookup_bool(&f.value))
                    .unwrap_or(false)
            })
    }

    /// A value flag: given, else the first of its variables set and not
    /// empty.
    pub fn value(&self, given: Option<String>, vars: &[EnvVar]) -> Option<String> {
        given.or_else(|| {
            vars.iter()
                .filter_map(|v| self.get(*v))
                .map(|f| f.value)
                .find(|v| !v.trim().is_empty())
        })
    }

    /// Refuses `flag` when it is given, or its variable is (true for a
    /// boolean, not empty for a value), with the table's reason.
    pub fn refuse(
        &self,
        flag: &str,
        given: bool,
        var: Option<EnvVar>,
        boolean: bool,
    ) -> Result<()> {
        if given {
            bail!(compat::refusal(self.command, flag));
        }
        if let Some(found) = var.and_then(|v| self.get(v)) {
            let set = if boolean {
                lookup_bool(&found.value).unwrap_or(false)
            } else {
                !found.value.trim().is_empty()
            };
            if set {
                bail!(compat::refusal_of_var(self.command, flag, &found.name));
            }
        }
        Ok(())
    }

    /// Warns (once) that `flag` changes nothing, when it or its variable
    /// is given.
    pub fn warn(&self, flag: &str, given: bool, var: Option<EnvVar>) {
        if self.flag(given, var.as_slice()) {
            tracing::warn!("{}", compat::warning(self.command, flag));
        }
    }
}
