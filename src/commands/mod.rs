//! One module per command: each turns parsed flags into library calls.

mod action;
mod build;
mod cache;
mod config;
mod doctor;
mod flags;
mod inspect;
mod instance;
mod internal;
mod key;
mod overlay;
mod pull;
mod registry;
mod sif;
mod sign;
mod verify;

use std::io::Write;

use anyhow::{bail, Result};
use clap_complete::Shell;
use vessel_config::Tool;

use crate::cli::{Cli, Command, CompletionShell};

/// Vessel's own version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The Apptainer release whose behaviour Vessel follows. Reported when
/// answering as `apptainer` or `singularity`, because workflow tools read
/// `--version` to decide which features they may use.
pub const APPTAINER_COMPAT_VERSION: &str = "1.4.5";

/// Runs a parsed command line and returns the exit status.
pub fn run(cli: Cli, tool: Tool) -> Result<u8> {
    let env = flags::Env::new(tool, "global");
    config::use_config_file(tool, cli.global.config)?;
    env.refuse("--build-config", cli.global.build_config, None, true)?;
    if cli.global.version {
        println!("{} version {}", version_name(tool), version(tool));
        return Ok(0);
    }
    let Some(command) = cli.command else {
        crate::cli_command(tool).print_help()?;
        println!();
        return Ok(0);
    };
    match command {
        Command::Version => {
            println!("{}", version(tool));
            Ok(0)
        }
        Command::Completion(args) => {
            let shell = match args.shell {
                CompletionShell::Bash => Shell::Bash,
                CompletionShell::Zsh => Shell::Zsh,
                CompletionShell::Fish => Shell::Fish,
            };
            let mut cmd = completion_command(tool);
            let mut out = std::io::stdout().lock();
            clap_complete::generate(shell, &mut cmd, tool.command(), &mut out);
            out.flush()?;
            Ok(0)
        }
        Command::Exec(args) => action::run(tool, action::Verb::Exec, args),
        Command::Run(args) => action::run(tool, action::Verb::Run, args),
        Command::Test(args) => action::run(tool, action::Verb::Test, args),
        Command::Shell(args) => action::run(tool, action::Verb::Shell(args.shell), args.action),
        Command::Inspect(args) => inspect::run(args),
        Command::RunHelp(args) => inspect::run_help(args),
        Command::Pull(args) => pull::run(tool, args),
        Command::Build(args) => build::run(tool, args),
        Command::Push(args) => pull::push(tool, args),
        Command::Cache(args) => cache::run(tool, args),
        Command::Registry(args) => registry::run(args),
        Command::Config(args) => config::run(tool, args),
        Command::Buildcfg(args) => config::buildcfg(tool, args),
        Command::Doctor(args) => doctor::run(tool, args),
        Command::Sif(args) => sif::run(args),
        Command::Key(args) => key::run(tool, args),
        Command::Overlay(args) => overlay::run(tool, args),
        Command::Sign(args) => sign::run(tool, args),
        Command::Verify(args) => verify::run(tool, args),
        Command::FakerootRun(args) => internal::fakeroot(args),
        Command::MountImage(args) => internal::mount_image(args),
        Command::Instance(args) => instance::run(tool, args),
        Command::InstanceInit { fd } => vessel_runtime::instance::init::main(fd),
        Command::CompatTable => {
            write_stdout(crate::compat::print_table().as_bytes())?;
            Ok(0)
        }
        other => bail!(
            "'{} {}' is not implemented yet in Vessel {VERSION}",
            tool.command(),
            other.name()
        ),
    }
}

/// Writes command output; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

fn version_name(tool: Tool) -> &'static str {
    match tool {
        Tool::Vessel => "vessel",
        Tool::Apptainer | Tool::Singularity => "apptainer",
    }
}

fn version(tool: Tool) -> String {
    match tool {
        Tool::Vessel => VERSION.to_string(),
        Tool::Apptainer | Tool::Singularity => {
            format!("{APPTAINER_COMPAT_VERSION}+vessel.{VERSION}")
        }
    }
}

/// The command tree the shell completions are generated from. The
/// subcommands' flags are deferred (`cli::Command`) and the `help`
/// subcommand's tree is made from what the subcommands hold when the root
/// is built: so the root gets each subcommand already built in full.
fn completion_command(tool: Tool) -> clap::Command {
    let mut full = crate::cli_command(tool);
    full.build();
    let mut cmd = crate::cli_command(tool);
    // clap's own `help` subcommand, added by the build, is made again.
    for sub in full.get_subcommands().filter(|s| s.get_name() != "help") {
        cmd = cmd.mut_subcommand(sub.get_name(), |_| sub.clone());
    }
    cmd
}
