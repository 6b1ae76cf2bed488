//! `vessel`: the command-line front end. It parses arguments, sets up
//! messages, and hands each command to the library that does the work.

mod cli;
mod commands;
mod compat;
mod grammar;
mod logging;
mod prompt;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use vessel_config::{lookup, lookup_bool, vars, EnvVar, Tool};

use crate::cli::Cli;
use crate::logging::{MessageLevel, Style};

/// Exit status for Vessel's own failures, as Apptainer uses.
const EXIT_FAILURE: u8 = 255;
/// Exit status for a command line that could not be parsed.
const EXIT_USAGE: u8 = 1;

fn main() -> ExitCode {
    let mut args: Vec<_> = std::env::args_os().collect();
    let argv0 = args.first().cloned().unwrap_or_default();
    let tool = Tool::from_argv0(&argv0);
    if let Some(first) = args.first_mut() {
        *first = tool.command().into();
    }
    // `./image.sif ARGS`: the kernel runs `run-singularity ./image.sif ARGS`.
    if Tool::is_launch_script(&argv0) {
        args.splice(1..1, ["--quiet".into(), "run".into()]);
    }
    let env = |var: EnvVar| {
        let found = lookup(tool, var, vessel_config::process_var);
        (found.value.map(|v| v.value), found.warning, found.info)
    };
    let env_flag = |var: EnvVar| env(var).0.as_deref().and_then(lookup_bool).unwrap_or(false);
    // Not built (`Command::build`): clap builds the subcommand it parses
    // on the way, and the grammar looks global flags up itself.
    let command = cli_command(tool);
    let args = match grammar::normalize(&command, args) {
        Ok(args) => args,
        Err(e) => {
            logging::fatal(Style::detect(env_flag(vars::NOCOLOR)), &e.0);
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let matches = match command.try_get_matches_from(args) {
        Ok(m) => m,
        Err(e) => {
            if let Some(message) = unknown_flag(&e) {
                logging::fatal(Style::detect(env_flag(vars::NOCOLOR)), &message);
                return ExitCode::from(EXIT_FAILURE);
            }
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(EXIT_USAGE);
        }
    };

    let g = &cli.global;
    let level = if g.debug || env_flag(vars::DEBUG) {
        MessageLevel::Debug
    } else if g.verbose || env_flag(vars::VERBOSE) {
        MessageLevel::Verbose
    } else if g.silent || env_flag(vars::SILENT) {
        MessageLevel::Silent
    } else if g.quiet || env_flag(vars::QUIET) {
        MessageLevel::Quiet
    } else {
        env(vars::MESSAGELEVEL)
            .0
            .and_then(|v| v.trim().parse().ok())
            .map_or(MessageLevel::Normal, MessageLevel::from_number)
    };
    let style = Style::detect(g.nocolor || env_flag(vars::NOCOLOR));
    logging::init(level, style);
    for var in vars::GLOBAL {
        let (_, warning, info) = env(*var);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        if let Some(i) = info {
            tracing::info!("{i}");
        }
    }

    tracing::trace!(
        "{} version: {} (Vessel {})",
        tool.product(),
        commands::APPTAINER_COMPAT_VERSION,
        commands::VERSION
    );
    match commands::run(cli, tool) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            logging::fatal_error(style, e.as_ref());
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// An unknown flag as Apptainer (pflag) words it, for its one `FATAL:`
/// line and exit status 255: `unknown flag: --bnd`, or `unknown shorthand
/// flag: 'X' in -X`. Other usage errors keep clap's message.
fn unknown_flag(e: &clap::Error) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::UnknownArgument {
        return None;
    }
    let Some(ContextValue::String(arg)) = e.get(ContextKind::InvalidArg) else {
        return None;
    };
    let long = arg.split('=').next().unwrap_or(arg);
    if long.starts_with("--") {
        Some(format!("unknown flag: {long}"))
    } else {
        let letter = arg.strip_prefix('-')?.chars().next()?;
        Some(format!("unknown shorthand flag: '{letter}' in {arg}"))
    }
}

/// The clap command, named after the persona so that usage lines, help and
/// completions say `apptainer` or `singularity` when invoked that way.
pub fn cli_command(tool: Tool) -> clap::Command {
    let cmd = Cli::command().name(tool.command()).bin_name(tool.command());
    match tool {
        Tool::Vessel => cmd,
        _ => cmd.about(format!(
            "{} (provided by Vessel): run, build and share containers without privilege",
            tool.product()
        )),
    }
}
