//! The command line as users meet it: help, version, completions, the
//! `apptainer`/`singularity` personas, variables, and commands that are not
//! there yet.

mod common;

use std::path::PathBuf;

use common::*;

/// The binary under another name, as a symlink, the way sites install it.
fn persona(name: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join(name);
    std::os::unix::fs::symlink(bin_path(), &link).unwrap();
    (dir, link)
}

#[test]
fn version() {
    let out = run(&["--version"]);
    assert_eq!(
        stdout(&out),
        format!("vessel version {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = run(&["version"]);
    assert_eq!(stdout(&out), format!("{}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn personas_answer_as_their_tool() {
    for name in ["apptainer", "singularity"] {
        let (_d, bin) = persona(name);
        let out = std::process::Command::new(&bin)
            .arg("--version")
            .output()
            .unwrap();
        let text = stdout(&out);
        assert!(text.starts_with("apptainer version 1."), "{text}");
        assert!(text.contains("vessel"), "{text}");
        let out = std::process::Command::new(&bin)
            .args(["inspect", "--help"])
            .output()
            .unwrap();
        assert!(
            stdout(&out).contains(&format!("Usage: {name} inspect")),
            "{}",
            stdout(&out)
        );
        let out = std::process::Command::new(&bin)
            .args(["keyserver", "list"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(255));
        assert!(
            stderr(&out).contains(&format!("'{name} keyserver' is not implemented yet")),
            "{}",
            stderr(&out)
        );
        let out = std::process::Command::new(&bin)
            .args(["completion", "bash"])
            .output()
            .unwrap();
        assert!(
            stdout(&out).contains(&format!("complete -F _{name}")),
            "{}",
            stdout(&out)
        );
    }
}

#[test]
fn commands_not_implemented_yet_fail_clearly() {
    for args in [vec!["keyserver", "list"], vec!["remote", "list"]] {
        let out = run(&args);
        assert_fatal(&out, &["not implemented yet", args[0]]);
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn help_lists_the_apptainer_command_tree() {
    let out = run(&["--help"]);
    assert!(out.status.success());
    let help = stdout(&out);
    for cmd in [
        "exec",
        "run",
        "shell",
        "test",
        "run-help",
        "instance",
        "build",
        "pull",
        "push",
        "delete",
        "tag",
        "search",
        "inspect",
        "overlay",
        "sif",
        "cache",
        "sign",
        "verify",
        "key",
        "keyserver",
        "remote",
        "registry",
        "capability",
        "config",
        "oci",
        "plugin",
        "checkpoint",
        "version",
        "completion",
        "help",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "{cmd} missing:\n{help}"
        );
    }
    let out = run(&["help", "sif", "add"]);
    assert!(stdout(&out).contains("--datatype"));
}

#[test]
fn completion_scripts() {
    for (shell, marker) in [
        ("bash", "complete -F _vessel"),
        ("zsh", "#compdef vessel"),
        ("fish", "complete -c vessel"),
    ] {
        let out = run(&["completion", shell]);
        assert!(out.status.success());
        assert!(stdout(&out).contains(marker), "{shell}");
        assert!(stdout(&out).contains("inspect"), "{shell}");
    }
    assert_eq!(run(&["completion", "tcsh"]).status.code(), Some(1));
}

#[test]
fn usage_errors_exit_1() {
    assert_eq!(run(&["bogus"]).status.code(), Some(1));
    assert_eq!(run(&["sif", "info", "1"]).status.code(), Some(1));
    assert_eq!(run(&["inspect"]).status.code(), Some(1));
}

#[test]
fn message_levels_and_variables() {
    let missing = "/nonexistent/x.sif";
    // Debug output, from the flag or from either variable prefix.
    let debug_lines = |out: &std::process::Output| {
        stderr(out)
            .lines()
            .filter(|l| l.starts_with("DEBUG"))
            .count()
    };
    assert!(debug_lines(&run(&["-d", "sif", "list", missing])) > 0);
    assert!(
        debug_lines(
            &vessel()
                .env("APPTAINER_DEBUG", "1")
                .args(["sif", "list", missing])
                .output()
                .unwrap()
        ) > 0
    );
    let out = vessel()
        .env("SINGULARITY_DEBUG", "true")
        .args(["sif", "list", missing])
        .output()
        .unwrap();
    assert!(debug_lines(&out) > 0);
    assert!(stderr(&out).contains("SINGULARITY_DEBUG is set, but APPTAINER_DEBUG is preferred"));
    let out = vessel()
        .env("APPTAINER_DEBUG", "1")
        .env("SINGULARITY_DEBUG", "0")
        .args(["sif", "list", missing])
        .output()
        .unwrap();
    assert!(stderr(&out)
        .contains("WARNING: APPTAINER_DEBUG and SINGULARITY_DEBUG have different values"));
    // Silent still shows the fatal error; messages are never colored off a terminal.
    let out = run(&["-s", "sif", "list", missing]);
    assert_fatal(&out, &[missing]);
    assert!(!stderr(&out).contains('\x1b'));
    // Warnings go away with --silent.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join(".singularity.d")).unwrap();
    std::fs::write(dir.path().join(".singularity.d/labels.json"), "{").unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(stderr(&run(&["inspect", d])).contains("WARNING"));
    assert!(stderr(&run(&["-s", "inspect", d])).is_empty());
    assert!(stderr(
        &vessel()
            .env("APPTAINER_SILENT", "1")
            .args(["inspect", d])
            .output()
            .unwrap()
    )
    .is_empty());
}

/// The variable forms of the flags of build, pull, push, sign, verify and
/// the global flags: refused ones are named by the variable the user set
/// (`SINGULARITY_` too), honoured ones act as their flag.
#[test]
fn variables_of_the_other_commands() {
    let image = busybox();
    let image = image.to_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let with = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = vessel();
        cmd.current_dir(d).args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    };
    let refused: &[(&str, &str, &[&str], &str)] = &[
        (
            "APPTAINER_LIBRARY",
            "https://l",
            &["pull", "docker://x/y"],
            "APPTAINER_LIBRARY (like --library) is not supported",
        ),
        (
            "SINGULARITY_LIBRARY",
            "https://l",
            &["build", "o.sif", image],
            "SINGULARITY_LIBRARY (like --library)",
        ),
        (
            "APPTAINER_JSON",
            "1",
            &["build", "o.sif", image],
            "APPTAINER_JSON (like --json)",
        ),
        (
            "APPTAINER_REPRODUCIBLE",
            "true",
            &["pull", "docker://x/y"],
            "APPTAINER_REPRODUCIBLE (like --reproducible)",
        ),
        (
            "APPTAINER_ENCRYPTION_PASSPHRASE",
            "1",
            &["build", "o.sif", image],
            "(like --passphrase)",
        ),
        (
            "APPTAINER_NVCCLI",
            "1",
            &["build", "o.sif", image],
            "APPTAINER_NVCCLI (like --nvccli)",
        ),
        (
            "APPTAINER_DOCKER_HOST",
            "unix:///d.sock",
            &["pull", "docker://x/y"],
            "APPTAINER_DOCKER_HOST (like --docker-host)",
        ),
        (
            "APPTAINER_VERIFY_OCSP",
            "1",
            &["verify", image],
            "APPTAINER_VERIFY_OCSP (like --ocsp-verify)",
        ),
        (
            "APPTAINER_VERIFY_CERTIFICATE",
            "c.pem",
            &["verify", image],
            "(like --certificate)",
        ),
    ];
    for (var, value, args, needle) in refused {
        let out = with(&[(var, value)], args);
        assert_fatal(&out, &[needle]);
    }
    // False booleans and the Docker client's own variables refuse nothing.
    let out = with(
        &[("APPTAINER_JSON", "0"), ("DOCKER_HOST", "unix:///d.sock")],
        &["build", "a.sif", image],
    );
    assert_ok(&out, "build with APPTAINER_JSON=0");
    // APPTAINER_FORCE is --force.
    assert_failed(
        &with(&[], &["build", "a.sif", image]),
        &["already exists", "--force"],
    );
    assert_ok(
        &with(&[("APPTAINER_FORCE", "1")], &["build", "a.sif", image]),
        "APPTAINER_FORCE",
    );
    // Warnings, and the command goes on.
    let out = with(&[], &["build", "--force", "--no-cleanup", "a.sif", image]);
    assert_ok(&out, "build --no-cleanup");
    assert!(
        stderr(&out).contains("WARNING: --no-cleanup has no effect"),
        "{}",
        stderr(&out)
    );
    let out = with(&[], &["verify", "--url", "https://keys.example.org", image]);
    assert!(
        stderr(&out).contains("WARNING: --url is ignored"),
        "{}",
        stderr(&out)
    );
}
