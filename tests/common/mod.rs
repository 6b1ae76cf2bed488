//! Shared helpers for the end-to-end tests: the built binary, the fixture
//! corpus beside the checkout, scratch space, running as the test users,
//! the assertions on what users see, the fixture corpus (`fixtures.rs`) and
//! visible skips (`skip.rs`).

#![allow(dead_code)]
// The tests read their own settings (VESSEL_TEST_*, VESSEL_FIXTURES, CI),
// not Vessel's variables, so not through vessel-config's registry.
#![allow(clippy::disallowed_methods)]

mod fixtures;
mod skip;

pub use fixtures::*;
pub use skip::*;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

/// Apptainer's busybox test image (amd64).
pub fn busybox() -> PathBuf {
    sif_fixtures().join("apptainer/images/busybox_amd64.sif")
}

/// Test data kept in this repository.
pub fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

pub fn vessel() -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("vessel").expect("vessel binary");
    // Messages must not depend on the developer's environment.
    for (key, _) in std::env::vars() {
        if key.starts_with("APPTAINER_") || key.starts_with("SINGULARITY_") {
            cmd.env_remove(key);
        }
    }
    cmd
}

pub fn bin_path() -> PathBuf {
    assert_cmd::cargo::cargo_bin("vessel")
}

/// Runs `vessel ARGS` and returns its output, whatever the status.
pub fn run(args: &[&str]) -> Output {
    vessel().args(args).output().expect("run vessel")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a failure as users see it: exit 255 and exactly one `FATAL:` line,
/// then only the `HINT:` lines of its advice; every one of `needles` is in
/// the `FATAL:` line or a hint.
pub fn assert_fatal(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(255), "stderr: {err}");
    let lines: Vec<_> = err.lines().collect();
    assert!(!lines.is_empty(), "expected a FATAL line, got nothing");
    assert!(lines[0].starts_with("FATAL:   "), "{err}");
    assert!(
        lines[1..].iter().all(|l| l.starts_with("HINT:    ")),
        "expected one FATAL line and its hints, got: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{n:?} missing from: {err}");
    }
}

/// A failed command that ends with a `FATAL:` line (and its `HINT:` lines)
/// naming every needle (progress `INFO:` lines may come before it).
pub fn assert_failed(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(255), "{err}");
    let lines: Vec<_> = err.lines().collect();
    let fatal = lines
        .iter()
        .rposition(|l| l.starts_with("FATAL:   "))
        .unwrap_or_else(|| panic!("no FATAL line in: {err}"));
    assert!(
        lines[fatal + 1..]
            .iter()
            .all(|l| l.starts_with("HINT:    ")),
        "only hints may follow the FATAL line: {err}"
    );
    let end = lines[fatal..].join("\n");
    for n in needles {
        assert!(end.contains(n), "{n:?} missing from: {end}");
    }
}

/// Asserts that the command `what` succeeded (showing its output if not)
/// and returns its standard output.
pub fn assert_ok(out: &Output, what: impl std::fmt::Display) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

/// The unprivileged user the container tests run as: `$VESSEL_TEST_USER`
/// (default `vtest`, which `scripts/test.sh` creates) when the tests run as
/// root, else the current user.
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

pub fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

pub fn test_user() -> TestUser {
    use std::os::unix::fs::MetadataExt;
    if !running_as_root() {
        let meta = std::fs::metadata("/proc/self").unwrap();
        return TestUser {
            name: std::env::var("USER").unwrap_or_default(),
            uid: meta.uid(),
            gid: meta.gid(),
            home: std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| "/".into()),
        };
    }
    let name = std::env::var("VESSEL_TEST_USER").unwrap_or_else(|_| "vtest".into());
    named_user(&name)
}

/// The second unprivileged user of the multi-user tests, the attacker:
/// `$VESSEL_TEST_ATTACKER` (default `vattack`, which `scripts/test.sh`
/// creates). `None` when the tests do not run as root, as they cannot act
/// as two users then.
#[track_caller]
pub fn attacker() -> Option<TestUser> {
    if !running_as_root() {
        skip("acting as two users (the attacker's part) needs root");
        return None;
    }
    let name = std::env::var("VESSEL_TEST_ATTACKER").unwrap_or_else(|_| "vattack".into());
    Some(named_user(&name))
}

/// A user by name, from `/etc/passwd`.
pub fn named_user(name: &str) -> TestUser {
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    let line = passwd
        .lines()
        .find(|l| l.split(':').next() == Some(name))
        .unwrap_or_else(|| panic!("test user {name} missing: create it with `useradd -m -s /bin/bash {name}` (scripts/test.sh does)"));
    let f: Vec<&str> = line.split(':').collect();
    TestUser {
        name: name.to_string(),
        uid: f[2].parse().unwrap(),
        gid: f[3].parse().unwrap(),
        home: PathBuf::from(f[5]),
    }
}

/// `vessel ARGS` as the unprivileged test user, with a clean environment
/// (HOME, USER, PATH, TMPDIR) plus `env`.
pub fn user_vessel(args: &[&str], env: &[(&str, &str)], cwd: &Path) -> std::process::Command {
    as_user(&test_user(), &bin_path(), args, env, cwd)
}

/// Runs `vessel ARGS` as `user` in `cwd` (see [`as_user`]), standard input
/// empty, and returns its output, whatever the status.
pub fn run_as(user: &TestUser, args: &[&str], env: &[(&str, &str)], cwd: &Path) -> Output {
    as_user(user, &bin_path(), args, env, cwd)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Runs `vessel ARGS` as the test user in `cwd` (see [`user_vessel`]),
/// standard input empty, and returns its output, whatever the status.
pub fn user_run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_as(&test_user(), args, env, cwd)
}

/// `PROGRAM ARGS` as `user` (switched to when the tests run as root), with
/// a clean environment (HOME, USER, PATH, TMPDIR) plus `env`.
pub fn as_user(
    user: &TestUser,
    program: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &Path,
) -> std::process::Command {
    let mut cmd = if running_as_root() {
        let mut c = std::process::Command::new("setpriv");
        c.arg(format!("--reuid={}", user.uid))
            .arg(format!("--regid={}", user.gid))
            .arg("--init-groups")
            .arg("env")
            .arg("-i");
        c
    } else {
        let mut c = std::process::Command::new("env");
        c.arg("-i");
        c
    };
    cmd.arg(format!("HOME={}", user.home.display()))
        .arg(format!("USER={}", user.name))
        .arg("PATH=/usr/local/bin:/usr/bin:/bin")
        .arg("TMPDIR=/tmp");
    // A whole suite rerun with settings of its own (scripts/test.sh runs
    // the runtime tests again with APPTAINER_UNDERLAY=1, the root Vessel
    // builds where overlays are refused).
    if let Ok(extra) = std::env::var("VESSEL_TEST_USER_ENV") {
        cmd.args(extra.split_whitespace());
    }
    for (k, v) in env {
        cmd.arg(format!("{k}={v}"));
    }
    cmd.arg(program).args(args).current_dir(cwd);
    cmd
}

/// A scratch directory the test user owns.
pub fn user_dir() -> tempfile::TempDir {
    dir_of(&test_user())
}

/// A scratch directory in `/tmp` that `user` owns (when the tests run as
/// root; else the current user's).
pub fn dir_of(user: &TestUser) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("vessel-test-")
        .tempdir_in("/tmp")
        .unwrap();
    if running_as_root() {
        std::os::unix::fs::chown(dir.path(), Some(user.uid), Some(user.gid)).unwrap();
    }
    dir
}

/// Gives `path` (not what is below it) to the test user, when the tests
/// run as root.
pub fn give_to_test_user(path: &Path) {
    if running_as_root() {
        let u = test_user();
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)).unwrap();
    }
}

/// The Debian image `scripts/test.sh` makes with debootstrap
/// (`$VESSEL_TEST_DEBIAN_SIF`), or `None` after a skip.
#[track_caller]
pub fn debian_sif() -> Option<PathBuf> {
    env_or_skip("VESSEL_TEST_DEBIAN_SIF", "scripts/test.sh sets it").map(PathBuf::from)
}

/// A Go test oracle built from Debian's reference SIF library by
/// `.ci/build-go-oracle.sh`, named by the variable `var`. Outside CI a
/// missing one skips the comparison; in CI it is a failure, so the check
/// always runs there.
#[track_caller]
pub fn go_oracle(var: &str) -> Option<PathBuf> {
    env_or_skip(
        var,
        "it names the reference oracle, built by .ci/build-go-oracle.sh",
    )
    .map(PathBuf::from)
}

/// The byte offset of a SIF's primary partition, from `vessel sif list`.
pub fn primary_offset(image: &Path) -> String {
    let out = run(&["sif", "list", image.to_str().unwrap()]);
    let list = stdout(&out);
    let line = list
        .lines()
        .find(|l| l.contains("*System"))
        .unwrap_or_else(|| panic!("{} has no primary partition:\n{list}", image.display()));
    line.split('|')
        .nth(3)
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .trim()
        .to_string()
}

/// Unpacks a SIF's root file system (or only `paths` of it) to `dest` with
/// `unsquashfs`, which the tests need.
pub fn unsquash(image: &Path, dest: &Path, paths: &[&str]) {
    let out = std::process::Command::new("unsquashfs")
        .args([
            "-no-progress",
            "-quiet",
            "-user-xattrs",
            "-offset",
            &primary_offset(image),
            "-dest",
        ])
        .arg(dest)
        .arg(image)
        .args(paths)
        .output()
        .expect("unsquashfs (squashfs-tools) is needed for this test");
    // Status 2: non-fatal errors, such as device nodes a user cannot make.
    assert!(
        out.status.success() || out.status.code() == Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Gives a tree to `uid:gid`.
pub fn chown_tree(path: &Path, uid: u32, gid: u32) {
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{uid}:{gid}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}

/// Wraps the SquashFS `sqfs` into a new SIF `sif` as its primary system
/// partition (amd64), as `scripts/test.sh` makes CI's Debian image.
pub fn sif_from_squashfs(sqfs: &Path, sif: &Path) {
    let sif = sif.to_str().unwrap();
    for args in [
        vec!["sif", "new", sif],
        vec![
            "sif",
            "add",
            "--datatype",
            "4",
            "--partfs",
            "1",
            "--parttype",
            "2",
            "--partarch",
            "2",
            "--groupid",
            "1",
            sif,
            sqfs.to_str().unwrap(),
        ],
    ] {
        let out = run(&args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
}

/// The test registries' settings (`KEY=value` lines of the state
/// directory's `env`) and that directory, or `None` after a skip.
#[track_caller]
pub fn registry_env() -> Option<(PathBuf, impl Fn(&str) -> String)> {
    let state = env_or_skip(
        "VESSEL_TEST_REGISTRY",
        "it names the registry state directory; scripts/test.sh sets it",
    )?;
    let state = PathBuf::from(state);
    let env = std::fs::read_to_string(state.join("env")).unwrap();
    let get = move |k: &str| {
        env.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
            .unwrap_or_else(|| panic!("{k} missing from the registry env"))
    };
    Some((state, get))
}

/// A copy of the built Vessel that `user` owns, as a user's own
/// installation is (which may be pointed at another configuration with
/// `VESSEL_CONF_DIR`); the directory holding it goes with the returned guard.
pub fn user_owned_vessel(user: &TestUser) -> (tempfile::TempDir, PathBuf) {
    let install = user_dir();
    let own = install.path().join("vessel");
    std::fs::copy(bin_path(), &own).unwrap();
    chown_tree(&own, user.uid, user.gid);
    (install, own)
}

/// A private cache and working directory for one test.
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        Scratch { dir: user_dir() }
    }
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
    pub fn cache(&self) -> String {
        self.dir.path().join("cachedir").display().to_string()
    }
    pub fn run(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let cache = self.cache();
        let mut all: Vec<(&str, &str)> = vec![("APPTAINER_CACHEDIR", cache.as_str())];
        all.extend_from_slice(env);
        user_run(self.path(), args, &all)
    }
    pub fn ok(&self, args: &[&str], env: &[(&str, &str)]) -> String {
        assert_ok(&self.run(args, env), format_args!("{args:?}"))
    }
}

/// `vessel ARGS` as the test user in `dir`.
pub fn run_in(dir: &Path, args: &[&str]) -> Output {
    user_run(dir, args, &[])
}

/// `vessel ARGS` as the test user in `dir`, which must succeed: its output.
pub fn ok_in(dir: &Path, args: &[&str]) -> String {
    assert_ok(&run_in(dir, args), format_args!("{args:?}"))
}

/// Writes `dir/name`, owned by the test user; returns its path.
pub fn write_for_user(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    give_to_test_user(&p);
    p.display().to_string()
}

/// A writable copy of the SIF `from` at `to` with its signatures removed.
pub fn unsigned_copy(from: &Path, to: &Path) {
    std::fs::copy(from, to).unwrap();
    std::fs::set_permissions(to, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let image = to.to_str().unwrap();
    for line in stdout(&run(&["sif", "list", image]))
        .lines()
        .filter(|l| l.contains("Signature"))
    {
        let id = line.split('|').next().unwrap().trim().to_string();
        assert!(run(&["sif", "del", &id, image]).status.success());
    }
}

/// A new passphrase-less 2048-bit key pair named `name`, made with `vessel`
/// run by `vessel_with_keys` (which points it at a key directory and
/// returns its output); returns the key's fingerprint.
pub fn new_key(vessel_with_keys: &dyn Fn(&[&str]) -> String, name: &str) -> String {
    new_key_with_passphrase(vessel_with_keys, name, "")
}

/// [`new_key`] protected by `passphrase` (none when empty).
pub fn new_key_with_passphrase(
    vessel_with_keys: &dyn Fn(&[&str]) -> String,
    name: &str,
    passphrase: &str,
) -> String {
    vessel_with_keys(&[
        "key",
        "newpair",
        "--name",
        name,
        "--email",
        "ci@example.org",
        "--comment",
        "test key",
        "--password",
        passphrase,
        "--bit-length",
        "2048",
    ]);
    vessel_with_keys(&["key", "list", "--secret"])
        .lines()
        .rev()
        .find_map(|l| l.split("Fingerprint:").nth(1))
        .map(|f| f.trim().to_string())
        .expect("a fingerprint in key list")
}
