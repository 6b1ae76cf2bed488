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
        if name.starts_with("apptainer") {
            Tool::Apptainer
        } else if name.starts_with("singularity") {
            Tool::Singularity
        } else {
            Tool::Vessel
        }
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
    }
}
