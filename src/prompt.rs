//! Everything Vessel asks at the terminal, in one place: values a flag did
//! not give, secrets (without echo on a terminal, else the next line of
//! standard input, for scripts), and confirmations.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, Result};
use vessel_oci::auth::Credentials;
use vessel_sys::Hinted;

/// A line typed by the user for a value given by no flag.
pub fn answer(value: Option<String>, prompt: &str, flag: &str) -> Result<String> {
    if let Some(v) = value {
        return Ok(v);
    }
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        print!("{prompt}");
        std::io::stdout().flush()?;
    }
    let mut line = String::new();
    if stdin.lock().read_line(&mut line)? == 0 {
        return Err(Hinted::new(
            format!("no input for {flag}"),
            format!("give it on the command line ({flag} VALUE)"),
        )
        .into());
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// A secret typed without echo on a terminal, or the next line of standard
/// input when it is not one (scripts, `echo pass | vessel sign …`).
pub fn read_secret(prompt: &str, flag: &str) -> Result<String> {
    if std::io::stdin().is_terminal() {
        return rpassword::prompt_password(prompt).context("reading the passphrase");
    }
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line)? == 0 {
        return Err(Hinted::new(
            "a passphrase is needed and standard input is empty",
            format!("type it at a terminal or pipe it in ({flag})"),
        )
        .into());
    }
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// `--docker-login`: asks for the user name and password.
pub fn docker_login() -> Result<Credentials> {
    if !std::io::stdin().is_terminal() {
        return Err(Hinted::new(
            "--docker-login needs a terminal to ask on",
            "set APPTAINER_DOCKER_USERNAME and APPTAINER_DOCKER_PASSWORD instead",
        )
        .into());
    }
    eprint!("Enter Docker Username: ");
    let mut username = String::new();
    std::io::stdin().read_line(&mut username)?;
    let password = read_password(false)?;
    Ok(Credentials {
        username: username.trim().to_string(),
        password,
    })
}

/// Prompts for a password on the terminal, or reads it from standard input.
pub fn read_password(from_stdin: bool) -> Result<String> {
    let mut line = String::new();
    if !from_stdin && std::io::stdin().is_terminal() {
        eprint!("Password / Token: ");
    }
    std::io::stdin()
        .read_line(&mut line)
        .context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

/// Asks `question` (a yes/no question, `[y/N]`) at the terminal; `true`
/// only for an explicit yes.
pub fn confirm(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    Ok(answer.trim().eq_ignore_ascii_case("y"))
}
