//! `registry login|logout|list`: credentials in the Docker format.

use anyhow::{anyhow, bail, Result};
use vessel_oci::auth::{self, Credentials};
use vessel_sys::Hinted;

use crate::cli::{RegistryArgs, RegistryCommand};
use crate::commands::pull::home;
use crate::prompt::read_password;

fn host(registry: &str) -> Result<String> {
    let h = registry
        .trim_start_matches("docker://")
        .trim_start_matches("oras://");
    let h = h.split('/').next().unwrap_or(h);
    if h.is_empty() {
        return Err(Hinted::new(
            format!("{registry:?} does not name a registry"),
            "name it as HOST[:PORT]",
        )
        .into());
    }
    Ok(h.to_string())
}

pub fn run(args: RegistryArgs) -> Result<u8> {
    if args.config.is_some() {
        let command = match args.command {
            RegistryCommand::Login { .. } => "registry login",
            RegistryCommand::Logout { .. } => "registry logout",
            RegistryCommand::List { .. } => "registry list",
        };
        bail!(crate::compat::refusal(command, "--config"));
    }
    match args.command {
        RegistryCommand::Login {
            username,
            password,
            password_stdin,
            authfile,
            registry,
        } => {
            let host = host(&registry)?;
            let username = username.ok_or_else(|| anyhow!("registry login needs --username"))?;
            let password = match password {
                Some(p) if !password_stdin => p,
                _ => read_password(password_stdin)?,
            };
            if password.is_empty() {
                bail!("the password is empty");
            }
            let file = auth::write_target(authfile.as_deref(), &home());
            auth::store(&file, &host, Some(&Credentials { username, password }))?;
            tracing::info!("Token stored in {}", file.display());
        }
        RegistryCommand::Logout { authfile, registry } => {
            let host = host(&registry)?;
            let file = auth::write_target(authfile.as_deref(), &home());
            if !auth::store(&file, &host, None)? {
                bail!("no credentials for {host} in {}", file.display());
            }
            tracing::info!("Logged out of {host}");
        }
        RegistryCommand::List { authfile } => {
            let files = auth::auth_files(authfile.as_deref(), &home());
            let entries = auth::list(&files)?;
            let mut out = String::from("URI                              LOGIN\n");
            for (h, u) in entries {
                out.push_str(&format!("{:<32} {u}\n", format!("docker://{h}")));
            }
            super::write_stdout(out.as_bytes())?;
        }
    }
    Ok(0)
}
