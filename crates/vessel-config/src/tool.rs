use std::ffi::OsStr;
use std::path::Path;

/// The tool Vessel answers as, picked from the name it was invoked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Vessel,
    Apptainer,
    Singularity,
}

impl Tool {
    /// `apptainer` and `singularity` (as a symlink's name, or a file name
    /// such as `singularity-3`) select that persona; anything else is Vessel.
    pub fn from_argv0(argv0: &OsStr) -> Tool {
        let name = Path::new(argv0)
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        if name.starts_with("apptainer") || name.starts_with("run-apptainer") {
            Tool::Apptainer
        } else if name.starts_with("singularity") || name.starts_with("run-singularity") {
            Tool::Singularity
        } else {
            Tool::Vessel
        }
    }

    /// Whether the program was started as `run-singularity`: the
    /// interpreter named in a SIF's launch script (`#!/usr/bin/env
    /// run-singularity`), which runs the image given as first argument.
    pub fn is_launch_script(argv0: &OsStr) -> bool {
        Path::new(argv0)
            .file_name()
            .is_some_and(|n| n == "run-singularity" || n == "run-apptainer")
    }

    /// The command name, as shown in usage lines and messages.
    pub fn command(self) -> &'static str {
        match self {
            Tool::Vessel => "vessel",
            Tool::Apptainer => "apptainer",
            Tool::Singularity => "singularity",
        }
    }

    /// The product name, as used in prose.
    pub fn product(self) -> &'static str {
        match self {
            Tool::Vessel => "Vessel",
            Tool::Apptainer => "Apptainer",
            Tool::Singularity => "Singularity",
        }
    }

    /// Variable prefixes in precedence order. Vessel and Apptainer prefer
    /// `APPTAINER_` and accept the legacy `SINGULARITY_`; as `singularity`
    /// the order is reversed, so scripts written for Singularity behave as
    /// they did there.
    pub fn env_prefixes(self) -> [&'static str; 2] {
        match self {
            Tool::Vessel | Tool::Apptainer => ["APPTAINER_", "SINGULARITY_"],
            Tool::Singularity => ["SINGULARITY_", "APPTAINER_"],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persona_from_invocation_name() {
        assert_eq!(
            Tool::from_argv0(OsStr::new("/usr/bin/apptainer")),
            Tool::Apptainer
        );
        assert_eq!(
            Tool::from_argv0(OsStr::new("singularity")),
            Tool::Singularity
        );
        assert_eq!(
            Tool::from_argv0(OsStr::new("./target/debug/vessel")),
            Tool::Vessel
        );
        assert_eq!(Tool::from_argv0(OsStr::new("")), Tool::Vessel);
        assert!(Tool::is_launch_script(OsStr::new(
            "/usr/bin/run-singularity"
        )));
        assert!(!Tool::is_launch_script(OsStr::new("singularity")));
    }
}
