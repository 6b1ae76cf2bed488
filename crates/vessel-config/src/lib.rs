//! Who Vessel is answering as, and the one registry of the environment
//! variables it reads.
//!
//! Vessel is a drop-in for Apptainer: installed as (or symlinked to)
//! `apptainer` or `singularity`, it names itself that way in messages and
//! reads that tool's variables first. Every variable Vessel honours is
//! declared once in [`vars`], with its documentation, so that help texts and
//! docs can be generated from one place.

mod env;
mod tool;

pub use env::{lookup, lookup_bool, EnvValue, EnvVar, Lookup};
pub use tool::Tool;

/// The environment variables Vessel reads, by their key without prefix.
pub mod vars {
    use crate::env::EnvVar;

    pub const DEBUG: EnvVar = EnvVar::new("DEBUG", "Print debugging messages (like --debug).");
    pub const VERBOSE: EnvVar = EnvVar::new("VERBOSE", "Print more messages (like --verbose).");
    pub const QUIET: EnvVar =
        EnvVar::new("QUIET", "Print only warnings and errors (like --quiet).");
    pub const SILENT: EnvVar = EnvVar::new("SILENT", "Print only errors (like --silent).");
    pub const NOCOLOR: EnvVar = EnvVar::new("NOCOLOR", "Never color messages (like --nocolor).");
    pub const MESSAGELEVEL: EnvVar = EnvVar::new(
        "MESSAGELEVEL",
        "Numeric message level: -3 errors only, -1 quiet, 1 normal, 4 verbose, 5 debug.",
    );

    /// Every variable, for documentation.
    pub const ALL: &[EnvVar] = &[DEBUG, VERBOSE, QUIET, SILENT, NOCOLOR, MESSAGELEVEL];
}
