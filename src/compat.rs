//! What Vessel does with each of Apptainer's flags, as data: one entry per
//! command and flag, with its status (implemented, warns, refused) and a
//! note. The commands take their refusal and warning messages from here,
//! the README's compatibility table is generated from it, and the tests
//! check it against clap's command tree and against the reference
//! inventory of Apptainer's flags, so that no flag is silently ignored.

/// The end-to-end tests' fixture corpus, beside which the reference
/// inventory lies.
#[cfg(test)]
#[path = "../tests/common/fixtures.rs"]
mod fixtures;
/// The end-to-end tests' visible skip (CI refuses to skip).
#[cfg(test)]
#[path = "../tests/common/skip.rs"]
mod skip;

/// What Vessel does with a flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Honoured (possibly by what Vessel always does, as the note says).
    Implemented,
    /// Accepted with a warning that it changes nothing, where Apptainer
    /// itself would only warn or has nothing to do either.
    Warns,
    /// Refused by one `FATAL:` line naming the flag and why.
    Refused,
}

impl Status {
    fn word(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Warns => "warns",
            Status::Refused => "refused",
        }
    }
}

/// A flag of some commands. For a refused flag (or a warning), the note is
/// what the message says after the flag: `--library is not supported: …`.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    pub commands: &'static [&'static str],
    pub flag: &'static str,
    pub status: Status,
    /// Honoured for root only; refused by name for other users (the
    /// runtime decides; the table and its tests read it).
    pub root_only: bool,
    pub note: &'static str,
}

/// One command's flag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    pub command: String,
    pub flag: String,
    pub status: Status,
    pub root_only: bool,
    pub note: String,
}

const fn imp(commands: &'static [&'static str], flag: &'static str, note: &'static str) -> Entry {
    Entry {
        commands,
        flag,
        status: Status::Implemented,
        root_only: false,
        note,
    }
}

const fn root(commands: &'static [&'static str], flag: &'static str, note: &'static str) -> Entry {
    Entry {
        root_only: true,
        ..imp(commands, flag, note)
    }
}

const fn warns(commands: &'static [&'static str], flag: &'static str, note: &'static str) -> Entry {
    Entry {
        status: Status::Warns,
        ..imp(commands, flag, note)
    }
}

const fn refused(
    commands: &'static [&'static str],
    flag: &'static str,
    note: &'static str,
) -> Entry {
    Entry {
        status: Status::Refused,
        ..imp(commands, flag, note)
    }
}

const GLOBAL: &[&str] = &["global"];
/// The actions, and the instance commands that take the same flags.
const ACTIONS: &[&str] = &[
    "exec",
    "run",
    "shell",
    "test",
    "instance start",
    "instance run",
];
const INSTANCE_START: &[&str] = &["instance start", "instance run"];
const INSTANCE_STOP: &[&str] = &["instance stop"];
const INSTANCE_LIST: &[&str] = &["instance list"];
const INSTANCE_STATS: &[&str] = &["instance stats"];
const BUILD: &[&str] = &["build"];
const PULL: &[&str] = &["pull"];
const PUSH: &[&str] = &["push"];
const BUILD_PULL: &[&str] = &["build", "pull"];
const BUILD_PULL_PUSH: &[&str] = &["build", "pull", "push"];
const INSPECT: &[&str] = &["inspect"];
const SIGN: &[&str] = &["sign"];
const VERIFY: &[&str] = &["verify"];
const SIGN_VERIFY: &[&str] = &["sign", "verify"];
const CONFIG_GLOBAL: &[&str] = &["config global"];
const CONFIG_FAKEROOT: &[&str] = &["config fakeroot"];
const OVERLAY_CREATE: &[&str] = &["overlay create"];
const KEY_LOCAL: &[&str] = &[
    "key newpair",
    "key list",
    "key import",
    "key export",
    "key remove",
];

pub const NOT_YET: &str = "is not implemented yet in Vessel";
pub const GPUS: &str = "is not implemented yet in Vessel (GPU support)";
pub const LIBRARY: &str = "is not supported: Vessel does not use the Sylabs container library; use docker:// or oras:// sources";
pub const ENCRYPTION: &str = "is not supported: Vessel does not make or run encrypted images";
const CGROUPS: &str =
    "needs cgroups (root, or cgroups v2 delegated through systemd): not implemented yet in Vessel";
const DOCKER_DAEMON: &str = "is not supported: Vessel does not talk to Docker daemons (docker-daemon: sources); use docker-archive: or a registry";
const KEY_SERVERS: &str =
    "is not supported: Vessel does not talk to key servers; use key import and key export";
const CERTIFICATES: &str =
    "is not implemented yet in Vessel: verify with PGP keyrings or --key PUBLIC.pem";
const REPRODUCIBLE: &str = "is not implemented yet in Vessel (deterministic images)";

/// The commands Vessel parses in full but refuses as a whole, and why:
/// every flag of theirs is refused with them.
pub const REFUSED_COMMANDS: &[(&str, &str)] = &[
    ("key search", KEY_SERVERS),
    ("key pull", KEY_SERVERS),
    ("key push", KEY_SERVERS),
];

/// Every flag of the commands Vessel implements, as Apptainer 1.4 has them
/// (and Vessel's own few, noted as such).
pub const ENTRIES: &[Entry] = &[
    // Global flags.
    imp(GLOBAL, "--debug", "also APPTAINER_DEBUG"),
    imp(GLOBAL, "--verbose", "also APPTAINER_VERBOSE"),
    imp(GLOBAL, "--quiet", "also APPTAINER_QUIET"),
    imp(GLOBAL, "--silent", "also APPTAINER_SILENT"),
    imp(GLOBAL, "--nocolor", "also APPTAINER_NOCOLOR"),
    imp(GLOBAL, "--version", ""),
    root(
        GLOBAL,
        "--config",
        "also APPTAINER_CONFIG_FILE: read instead of vessel.conf; for root, or an installation the user owns",
    ),
    refused(
        GLOBAL,
        "--build-config",
        "is not supported: it is internal to Apptainer's builds, and Vessel's builds do not need it",
    ),
    // exec, run, shell, test.
    imp(ACTIONS, "--bind", "also APPTAINER_BIND, APPTAINER_BINDPATH (added to the flag's)"),
    imp(ACTIONS, "--mount", "Docker's CSV syntax; also APPTAINER_MOUNT"),
    imp(ACTIONS, "--contain", ""),
    imp(ACTIONS, "--containall", ""),
    imp(ACTIONS, "--cleanenv", ""),
    imp(ACTIONS, "--env", "a comma-separated map, as Apptainer's"),
    imp(ACTIONS, "--env-file", ""),
    imp(ACTIONS, "--no-env", ""),
    imp(ACTIONS, "--no-eval", ""),
    imp(ACTIONS, "--no-home", ""),
    imp(ACTIONS, "--home", ""),
    imp(ACTIONS, "--no-mount", ""),
    imp(ACTIONS, "--scratch", ""),
    imp(ACTIONS, "--workdir", ""),
    imp(ACTIONS, "--cwd", ""),
    imp(ACTIONS, "--pwd", "the same as --cwd"),
    imp(ACTIONS, "--writable", "sandbox directories"),
    imp(ACTIONS, "--writable-tmpfs", ""),
    imp(ACTIONS, "--writable-tmpfs-size", "Vessel's own: the size of --writable-tmpfs"),
    imp(ACTIONS, "--unsquash", ""),
    imp(ACTIONS, "--overlay", "directories, ext3 images (fuse2fs unprivileged), SquashFS images and SIFs with an overlay partition, stacked; one writable"),
    imp(ACTIONS, "--pid", ""),
    imp(ACTIONS, "--no-pid", "no PID namespace, even with --containall or --compat"),
    imp(ACTIONS, "--ipc", ""),
    imp(ACTIONS, "--uts", ""),
    imp(ACTIONS, "--hostname", ""),
    imp(ACTIONS, "--net", "loopback only"),
    imp(
        ACTIONS,
        "--network",
        "`none` only (loopback); CNI networks are refused by name: they need root",
    ),
    refused(ACTIONS, "--network-args", "needs CNI and root: Vessel supports only --network none (loopback only)"),
    refused(
        ACTIONS,
        "--netns-path",
        "is not supported: joining another network namespace needs root; use the host's network or --network none",
    ),
    imp(ACTIONS, "--dns", "writes the container's /etc/resolv.conf"),
    imp(ACTIONS, "--app", "SCIF apps"),
    imp(ACTIONS, "--userns", "Vessel always uses a user namespace"),
    imp(ACTIONS, "--fakeroot", ""),
    imp(ACTIONS, "--no-init", ""),
    imp(ACTIONS, "--no-umask", ""),
    imp(ACTIONS, "--compat", ""),
    imp(
        ACTIONS,
        "--containlibs",
        "host library files bound read-only into /.singularity.d/libs, which goes on LD_LIBRARY_PATH",
    ),
    imp(ACTIONS, "--tmpdir", "where exec docker://… fetches; beats APPTAINER_TMPDIR and TMPDIR"),
    imp(ACTIONS, "--underlay", "the read-only root is a tmpfs with binds of the image's top-level entries instead of an overlay"),
    imp(ACTIONS, "--disable-cache", ""),
    imp(ACTIONS, "--docker-login", "also APPTAINER_DOCKER_LOGIN"),
    imp(ACTIONS, "--docker-username", "also APPTAINER_DOCKER_USERNAME, DOCKER_USERNAME"),
    imp(ACTIONS, "--docker-password", "also APPTAINER_DOCKER_PASSWORD, DOCKER_PASSWORD"),
    imp(ACTIONS, "--authfile", ""),
    imp(ACTIONS, "--no-https", ""),
    imp(ACTIONS, "--nohttps", "the same as --no-https"),
    imp(ACTIONS, "--ignore-fakeroot-command", "Vessel never uses fakeroot(1)"),
    imp(ACTIONS, "--ignore-subuid", "with --fakeroot, only root is mapped"),
    imp(ACTIONS, "--no-nv", "GPUs are never used unless asked for"),
    imp(ACTIONS, "--no-rocm", "GPUs are never used unless asked for"),
    imp(&["shell"], "--shell", ""),
    root(ACTIONS, "--keep-privs", "root only (root's default: all its capabilities); refused by name for other users"),
    root(ACTIONS, "--no-privs", "root only: refused by name for other users"),
    root(ACTIONS, "--add-caps", "root only: refused by name for other users"),
    root(ACTIONS, "--drop-caps", "root only: refused by name for other users"),
    root(ACTIONS, "--allow-setuid", "root only (no nosuid on the image); refused by name for other users"),
    root(ACTIONS, "--ignore-userns", "root only (root never uses one); refused by name for other users"),
    warns(
        ACTIONS,
        "--runscript-timeout",
        "has no effect: Vessel evaluates runscripts with /bin/sh, without a time limit",
    ),
    imp(
        ACTIONS,
        "--nv",
        "the host's NVIDIA driver: nvliblist.conf's libraries from the linker cache into /.singularity.d/libs, its programs, the job's devices; one warning on a host without one",
    ),
    imp(
        ACTIONS,
        "--nvccli",
        "nvidia-container-cli configure on the root (a writable tmpfs layer), with NVIDIA_VISIBLE_DEVICES and NVIDIA_DRIVER_CAPABILITIES; refused by name where it is not installed",
    ),
    imp(
        ACTIONS,
        "--rocm",
        "the host's ROCm driver: rocmliblist.conf's libraries and programs, /dev/kfd and /dev/dri",
    ),
    imp(
        ACTIONS,
        "--compat32",
        "with --nv or --rocm, their 32-bit libraries into /.singularity.d/libs32",
    ),
    imp(
        ACTIONS,
        "--device",
        "CDI devices (vendor/class=name): device nodes, binds, variables; update-ldcache hooks done by Vessel, other hooks refused",
    ),
    imp(ACTIONS, "--cdi-dirs", "where CDI specs are read (default /etc/cdi, /var/run/cdi)"),
    refused(ACTIONS, "--intel-hpu", "is not supported (Intel Gaudi devices)"),
    imp(
        ACTIONS,
        "--sharens",
        "the commands of one job step (MPI job, Slurm step, else parent process) with the same image and options share one container per node; refused by name for instance start",
    ),
    refused(ACTIONS, "--security", NOT_YET),
    refused(ACTIONS, "--fusemount", "is not supported: mount on the host and bind the mount point"),
    refused(ACTIONS, "--passphrase", ENCRYPTION),
    refused(ACTIONS, "--pem-path", ENCRYPTION),
    refused(ACTIONS, "--docker-host", DOCKER_DAEMON),
    refused(ACTIONS, "--apply-cgroups", CGROUPS),
    refused(ACTIONS, "--cpus", CGROUPS),
    refused(ACTIONS, "--cpu-shares", CGROUPS),
    refused(ACTIONS, "--cpuset-cpus", CGROUPS),
    refused(ACTIONS, "--cpuset-mems", CGROUPS),
    refused(ACTIONS, "--memory", CGROUPS),
    refused(ACTIONS, "--memory-reservation", CGROUPS),
    refused(ACTIONS, "--memory-swap", CGROUPS),
    refused(ACTIONS, "--pids-limit", CGROUPS),
    refused(ACTIONS, "--blkio-weight", CGROUPS),
    refused(ACTIONS, "--blkio-weight-device", CGROUPS),
    refused(ACTIONS, "--oom-kill-disable", CGROUPS),
    // build, pull, push: the registry flags first.
    imp(BUILD_PULL_PUSH, "--no-https", "also APPTAINER_NOHTTPS, APPTAINER_NO_HTTPS"),
    imp(BUILD_PULL_PUSH, "--nohttps", "the same as --no-https"),
    imp(BUILD_PULL_PUSH, "--authfile", "also APPTAINER_AUTH_FILE"),
    imp(BUILD_PULL_PUSH, "--disable-cache", "also APPTAINER_DISABLE_CACHE"),
    imp(BUILD_PULL_PUSH, "--docker-login", "also APPTAINER_DOCKER_LOGIN"),
    imp(
        BUILD_PULL_PUSH,
        "--docker-username",
        "also APPTAINER_DOCKER_USERNAME, DOCKER_USERNAME",
    ),
    imp(
        BUILD_PULL_PUSH,
        "--docker-password",
        "also APPTAINER_DOCKER_PASSWORD, DOCKER_PASSWORD",
    ),
    refused(BUILD_PULL_PUSH, "--docker-host", DOCKER_DAEMON),
    imp(BUILD_PULL_PUSH, "--tmpdir", "also APPTAINER_TMPDIR, TMPDIR"),
    refused(BUILD_PULL_PUSH, "--library", LIBRARY),
    imp(BUILD_PULL, "--force", "also APPTAINER_FORCE"),
    imp(BUILD_PULL, "--sandbox", "also APPTAINER_SANDBOX"),
    imp(BUILD, "--arch", "also APPTAINER_BUILD_ARCH"),
    imp(BUILD, "--arch-variant", "also APPTAINER_BUILD_ARCH_VARIANT"),
    imp(PULL, "--arch", "also APPTAINER_PULL_ARCH"),
    imp(PULL, "--arch-variant", "also APPTAINER_PULL_ARCH_VARIANT"),
    imp(PULL, "--platform", "Vessel's own: OS/ARCH[/VARIANT]"),
    refused(BUILD_PULL, "--reproducible", REPRODUCIBLE),
    imp(
        PULL,
        "--no-cleanup",
        "also APPTAINER_NO_CLEANUP; a failed pull leaves nothing to keep",
    ),
    warns(
        BUILD,
        "--no-cleanup",
        "has no effect: Vessel removes a failed build's temporary files",
    ),
    // build.
    imp(BUILD, "--update", "also APPTAINER_UPDATE"),
    imp(BUILD, "--notest", "also APPTAINER_NOTEST"),
    imp(BUILD, "--section", "also APPTAINER_SECTION"),
    imp(BUILD, "--fakeroot", "unprivileged builds always run as fake root"),
    imp(BUILD, "--userns", "Vessel's builds always run in a user namespace"),
    imp(BUILD, "--fix-perms", "also APPTAINER_FIXPERMS"),
    imp(BUILD, "--mksquashfs-args", "also APPTAINER_MKSQUASHFS_ARGS"),
    imp(BUILD, "--bind", "for %post and %test"),
    imp(BUILD, "--mount", "for %post and %test; also APPTAINER_MOUNT"),
    imp(BUILD, "--writable-tmpfs", "for %test"),
    imp(BUILD, "--build-arg", ""),
    imp(BUILD, "--build-arg-file", ""),
    imp(BUILD, "--warn-unused-build-args", ""),
    imp(BUILD, "--ignore-fakeroot-command", "Vessel never uses fakeroot(1)"),
    imp(BUILD, "--ignore-proot", "Vessel never uses PRoot"),
    refused(BUILD, "--ignore-subuid", "is not implemented yet in Vessel for builds"),
    refused(
        BUILD,
        "--ignore-userns",
        "is not supported: Vessel's builds always run in a user namespace",
    ),
    refused(
        BUILD,
        "--json",
        "is not supported: Vessel builds from definition files, not JSON",
    ),
    refused(BUILD, "--data", NOT_YET),
    refused(BUILD, "--encrypt", ENCRYPTION),
    refused(BUILD, "--passphrase", ENCRYPTION),
    refused(BUILD, "--pem-path", ENCRYPTION),
    imp(
        BUILD,
        "--nv",
        "the host's NVIDIA driver in %post and %test; the empty mount points it needs are removed from the image after %post",
    ),
    refused(BUILD, "--nvccli", GPUS),
    imp(BUILD, "--rocm", "the host's ROCm driver in %post and %test, as --nv"),
    imp(BUILD, "--compat32", "with --nv or --rocm, their 32-bit libraries too"),
    refused(
        BUILD,
        "--buildkit-host",
        "is not supported: Vessel does not build Dockerfiles; build the image elsewhere and use docker:// or docker-archive:",
    ),
    refused(BUILD, "--remote", "is no longer supported (as in Apptainer): build locally"),
    // pull.
    imp(PULL, "--dir", "also APPTAINER_PULLDIR, APPTAINER_PULLFOLDER"),
    imp(PULL, "--name", "also APPTAINER_PULL_NAME"),
    imp(
        PULL,
        "--allow-unsigned",
        "Vessel's sources carry no signatures to check: nothing to allow",
    ),
    imp(
        PULL,
        "--allow-unauthenticated",
        "Vessel's sources carry no signatures to check: nothing to allow",
    ),
    // push.
    imp(
        PUSH,
        "--allow-unsigned",
        "Vessel pushes unsigned images without a warning: nothing to silence",
    ),
    warns(
        PUSH,
        "--description",
        "is ignored: only the Sylabs library keeps a description",
    ),
    refused(PUSH, "--annotation", NOT_YET),
    // inspect and run-help.
    imp(INSPECT, "--labels", ""),
    imp(INSPECT, "--deffile", ""),
    imp(INSPECT, "--runscript", ""),
    imp(INSPECT, "--startscript", ""),
    imp(INSPECT, "--test", ""),
    imp(INSPECT, "--environment", ""),
    imp(INSPECT, "--helpfile", ""),
    imp(INSPECT, "--list-apps", ""),
    imp(INSPECT, "--app", ""),
    imp(INSPECT, "--json", ""),
    imp(INSPECT, "--all", ""),
    imp(&["run-help"], "--app", ""),
    // sign and verify.
    imp(SIGN_VERIFY, "--group-id", ""),
    imp(SIGN_VERIFY, "--groupid", "the same as --group-id"),
    imp(SIGN_VERIFY, "--sif-id", ""),
    imp(SIGN_VERIFY, "--id", "the same as --sif-id"),
    imp(SIGN_VERIFY, "--all", ""),
    imp(SIGN_VERIFY, "--keysdir", "Vessel's own; also APPTAINER_KEYSDIR"),
    imp(SIGN, "--key", "DSSE signatures; also APPTAINER_SIGN_KEY"),
    imp(SIGN, "--keyidx", ""),
    imp(VERIFY, "--key", "DSSE signatures; also APPTAINER_VERIFY_KEY"),
    imp(
        VERIFY,
        "--local",
        "what Vessel always does; also APPTAINER_LOCAL_VERIFY",
    ),
    imp(VERIFY, "--json", ""),
    imp(VERIFY, "--legacy-insecure", ""),
    warns(
        VERIFY,
        "--url",
        "is ignored: Vessel verifies with the local keyrings only, never a key server",
    ),
    refused(VERIFY, "--certificate", CERTIFICATES),
    refused(VERIFY, "--certificate-intermediates", CERTIFICATES),
    refused(VERIFY, "--certificate-roots", CERTIFICATES),
    refused(VERIFY, "--ocsp-verify", CERTIFICATES),
    // key.
    imp(KEY_LOCAL, "--global", "the global public keyring"),
    imp(KEY_LOCAL, "--keysdir", "also APPTAINER_KEYSDIR"),
    imp(&["key newpair"], "--name", ""),
    imp(&["key newpair"], "--email", ""),
    imp(&["key newpair"], "--comment", ""),
    imp(&["key newpair"], "--password", ""),
    imp(&["key newpair"], "--bit-length", ""),
    refused(&["key newpair"], "--push", KEY_SERVERS),
    imp(&["key list"], "--secret", ""),
    imp(&["key import"], "--new-password", ""),
    imp(&["key export"], "--secret", ""),
    imp(&["key export"], "--armor", ""),
    imp(&["key remove"], "--public", ""),
    imp(&["key remove"], "--secret", ""),
    imp(&["key remove"], "--both", ""),
    // registry.
    refused(
        &["registry login", "registry logout", "registry list"],
        "--config",
        "is not supported: Vessel keeps no remote endpoint configuration; credentials go to --authfile",
    ),
    imp(&["registry login"], "--username", ""),
    imp(&["registry login"], "--password", ""),
    imp(&["registry login"], "--password-stdin", ""),
    imp(
        &["registry login", "registry logout", "registry list"],
        "--authfile",
        "",
    ),
    // config: the administrator's.
    root(CONFIG_GLOBAL, "--set", "edits vessel.conf in place, comments and order kept"),
    root(CONFIG_GLOBAL, "--unset", "edits vessel.conf in place, comments and order kept"),
    root(CONFIG_GLOBAL, "--reset", "writes Apptainer's default"),
    imp(CONFIG_GLOBAL, "--get", "the default when the file does not set it"),
    imp(CONFIG_GLOBAL, "--dry-run", "prints the resulting file"),
    root(CONFIG_FAKEROOT, "--add", "a free range of 65536 ids from 100000, under shadow-utils' lock"),
    root(CONFIG_FAKEROOT, "--remove", "under shadow-utils' lock"),
    root(CONFIG_FAKEROOT, "--enable", "under shadow-utils' lock"),
    root(CONFIG_FAKEROOT, "--disable", "a leading `!`, as Apptainer writes"),
    // overlay create.
    imp(OVERLAY_CREATE, "--size", "MiB, at least 64"),
    imp(
        OVERLAY_CREATE,
        "--sparse",
        "a sparse image file; a partition added to a SIF is written out whole",
    ),
    imp(OVERLAY_CREATE, "--create-dir", "made under upper/"),
    imp(
        OVERLAY_CREATE,
        "--fakeroot",
        "upper/ and work/ owned by root, as Apptainer's fake root makes them; also APPTAINER_FAKEROOT",
    ),
    imp(
        OVERLAY_CREATE,
        "--tmpdir",
        "where the layout is staged; beats APPTAINER_TMPDIR and TMPDIR",
    ),
    // instance start, run, stop, list, stats.
    refused(
        INSTANCE_START,
        "--boot",
        "is not implemented yet in Vessel (an instance booted with /sbin/init needs root)",
    ),
    imp(INSTANCE_START, "--pid-file", "the pid of the instance's first process"),
    refused(
        INSTANCE_START,
        "--dmtcp-launch",
        "is not supported: Vessel does not checkpoint instances with DMTCP",
    ),
    refused(
        INSTANCE_START,
        "--dmtcp-restart",
        "is not supported: Vessel does not checkpoint instances with DMTCP",
    ),
    root(
        &["instance stop", "instance list", "instance stats"],
        "--user",
        "another user's instances (your own name is accepted)",
    ),
    imp(INSTANCE_STOP, "--all", ""),
    imp(INSTANCE_STOP, "--force", "SIGKILL at once"),
    imp(INSTANCE_STOP, "--signal", "default SIGTERM; a name or a number"),
    imp(INSTANCE_STOP, "--timeout", "seconds before SIGKILL, default 10"),
    imp(&["instance list", "instance stats"], "--json", ""),
    imp(INSTANCE_LIST, "--logs", ""),
    imp(INSTANCE_LIST, "--all", "Vessel makes no hidden instances: every one is listed"),
    imp(
        INSTANCE_STATS,
        "--no-stream",
        "one sample, always: CPU time, memory and processes from /proc",
    ),
    // cache.
    imp(&["cache list", "cache clean"], "--type", ""),
    imp(&["cache list"], "--verbose", ""),
    imp(&["cache clean"], "--days", ""),
    imp(&["cache clean"], "--dry-run", ""),
    imp(&["cache clean"], "--force", ""),
];

/// Every long flag (and alias) of `path` in clap's command tree, without
/// clap's own `--help`.
pub fn clap_flags(root: &clap::Command, path: &str) -> Option<Vec<String>> {
    let mut cmd = root;
    if path != "global" {
        for word in path.split(' ') {
            cmd = cmd.find_subcommand(word)?;
        }
    }
    let mut out = Vec::new();
    for a in cmd.get_arguments() {
        let Some(long) = a.get_long() else { continue };
        if long == "help" {
            continue;
        }
        out.push(format!("--{long}"));
        for alias in a.get_all_aliases().unwrap_or_default() {
            out.push(format!("--{alias}"));
        }
    }
    Some(out)
}

/// The command tree with global flags propagated, as the user meets it.
pub fn built_cli() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    cmd.build();
    cmd
}

/// Every (command, flag), in the table's order: the entries, then the flags
/// of the commands refused as a whole (as clap parses them).
pub fn rows() -> Vec<Row> {
    let mut out = Vec::new();
    for e in ENTRIES {
        for c in e.commands {
            out.push(Row {
                command: c.to_string(),
                flag: e.flag.to_string(),
                status: e.status,
                root_only: e.root_only,
                note: e.note.to_string(),
            });
        }
    }
    let cli = built_cli();
    for (command, why) in REFUSED_COMMANDS {
        for flag in clap_flags(&cli, command).unwrap_or_default() {
            out.push(Row {
                command: command.to_string(),
                flag,
                status: Status::Refused,
                root_only: false,
                note: why.to_string(),
            });
        }
    }
    out
}

fn entry(command: &str, flag: &str) -> Option<&'static Entry> {
    ENTRIES
        .iter()
        .find(|e| e.flag == flag && e.commands.contains(&command))
}

/// The message refusing `flag` of `command`: `--library is not supported: …`.
pub fn refusal(command: &str, flag: &str) -> String {
    let note = entry(command, flag)
        .filter(|e| e.status == Status::Refused)
        .map_or(NOT_YET, |e| e.note);
    format!("{flag} {note}")
}

/// The message refusing the variable `var` that stands for `flag`.
pub fn refusal_of_var(command: &str, flag: &str, var: &str) -> String {
    let note = entry(command, flag)
        .filter(|e| e.status == Status::Refused)
        .map_or(NOT_YET, |e| e.note);
    format!("{var} (like {flag}) {note}")
}

/// The warning for `flag` of `command`: `--url is ignored: …`.
pub fn warning(command: &str, flag: &str) -> String {
    let note = entry(command, flag)
        .filter(|e| e.status == Status::Warns)
        .map_or("has no effect in Vessel", |e| e.note);
    format!("{flag} {note}")
}

#[cfg(test)]
fn cell(text: &str) -> String {
    text.replace('|', "\\|")
}

/// `vessel __compat-table`: every row, as tab-separated command, flag,
/// status, `root-only` or `-`, and `value` when the flag takes one or `-`,
/// for the end-to-end test that types each refused flag.
pub fn print_table() -> String {
    let cli = built_cli();
    let mut out = String::new();
    for r in rows() {
        let takes_value =
            find(&cli, &r.command, &r.flag).is_some_and(|a| a.get_action().takes_values());
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            r.command,
            r.flag,
            r.status.word(),
            if r.root_only { "root-only" } else { "-" },
            if takes_value { "value" } else { "-" }
        ));
    }
    out
}

/// The clap argument of `flag` (long or alias) in the command `path`.
fn find<'a>(root: &'a clap::Command, path: &str, flag: &str) -> Option<&'a clap::Arg> {
    let mut cmd = root;
    if path != "global" {
        for word in path.split(' ') {
            cmd = cmd.find_subcommand(word)?;
        }
    }
    let long = flag.strip_prefix("--")?;
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(long) || a.get_all_aliases().is_some_and(|al| al.contains(&long))
    })
}

#[cfg(test)]
/// The README's compatibility table. A flag with the same status and note
/// in several commands is one row; the commands refused as a whole are
/// one row each, listing their flags.
pub fn markdown() -> String {
    use std::fmt::Write as _;
    let rows = rows();
    let mut out = String::from("| commands | flag | status | note |\n|---|---|---|---|\n");
    let whole: Vec<&str> = REFUSED_COMMANDS.iter().map(|(c, _)| *c).collect();
    let mut done = vec![false; rows.len()];
    for (i, r) in rows.iter().enumerate() {
        if done[i] || whole.contains(&r.command.as_str()) {
            continue;
        }
        let mut commands = Vec::new();
        for (j, o) in rows.iter().enumerate().skip(i) {
            if !done[j] && o.flag == r.flag && o.status == r.status && o.note == r.note {
                done[j] = true;
                commands.push(format!("`{}`", o.command));
            }
        }
        let status = if r.root_only {
            "implemented (root only)"
        } else {
            r.status.word()
        };
        let _ = writeln!(
            out,
            "| {} | `{}` | {status} | {} |",
            commands.join(", "),
            r.flag,
            cell(&r.note)
        );
    }
    for (command, why) in REFUSED_COMMANDS {
        // Sorted: the order of clap's definitions is no one's business.
        let mut flags: Vec<String> = rows
            .iter()
            .filter(|r| r.command == *command)
            .map(|r| format!("`{}`", r.flag))
            .collect();
        flags.sort();
        let _ = writeln!(
            out,
            "| `{command}` | every flag: {} | refused | {} |",
            if flags.is_empty() {
                "none".to_string()
            } else {
                flags.join(", ")
            },
            cell(why)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeMap, BTreeSet};

    /// The commands the table covers, as clap paths.
    fn covered_commands() -> BTreeSet<String> {
        rows().into_iter().map(|r| r.command).collect()
    }

    /// Every long flag clap knows for the covered commands has a row, and
    /// every row's flag is one clap knows for its command.
    #[test]
    fn every_flag_of_the_cli_has_a_row_and_every_row_a_flag() {
        let cli = built_cli();
        let rows = rows();
        let mut missing = Vec::new();
        let mut unknown = Vec::new();
        for command in covered_commands() {
            let Some(flags) = clap_flags(&cli, &command) else {
                unknown.push(format!("{command}: no such command"));
                continue;
            };
            let of: BTreeSet<&str> = rows
                .iter()
                .filter(|r| r.command == command)
                .map(|r| r.flag.as_str())
                .collect();
            for f in &flags {
                if !of.contains(f.as_str()) {
                    missing.push(format!("{command} {f}"));
                }
            }
            for f in of {
                if !flags.iter().any(|c| c == f) {
                    unknown.push(format!("{command} {f}"));
                }
            }
        }
        assert!(missing.is_empty(), "flags without a row: {missing:?}");
        assert!(unknown.is_empty(), "rows without a flag: {unknown:?}");
        for extra in [
            "build",
            "pull",
            "push",
            "inspect",
            "sign",
            "verify",
            "cache list",
        ] {
            assert!(covered_commands().contains(extra), "{extra}");
        }
    }

    #[test]
    fn one_row_per_command_and_flag() {
        let mut seen = BTreeSet::new();
        for r in rows() {
            assert!(
                seen.insert((r.command.clone(), r.flag.clone())),
                "{} {} twice",
                r.command,
                r.flag
            );
        }
    }

    #[test]
    fn refusals_and_warnings_read_as_sentences() {
        for r in rows() {
            match r.status {
                Status::Refused | Status::Warns => assert!(
                    !r.note.is_empty(),
                    "{} {}: a refusal or warning says why",
                    r.command,
                    r.flag
                ),
                Status::Implemented => {}
            }
        }
        assert_eq!(
            refusal("build", "--library"),
            "--library is not supported: Vessel does not use the Sylabs container library; use docker:// or oras:// sources"
        );
        assert_eq!(
            refusal_of_var("pull", "--library", "APPTAINER_LIBRARY"),
            format!("APPTAINER_LIBRARY (like --library) {LIBRARY}")
        );
    }

    /// The long flags of §1.2 to §1.4 of the reference inventory, by the
    /// command (or command prefix, for `key` and `registry`) they belong to.
    fn inventory_flags(text: &str) -> BTreeMap<String, BTreeSet<String>> {
        fn longs(span: &str) -> Vec<String> {
            span.split(|c: char| c.is_whitespace() || c == '/' || c == ',')
                .filter_map(|w| w.strip_prefix("--"))
                .map(|w| {
                    let end = w
                        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                        .unwrap_or(w.len());
                    format!("--{}", &w[..end])
                })
                .filter(|f| f.len() > 2)
                .collect()
        }
        /// The long flags in the backquoted spans of `text`.
        fn quoted(text: &str) -> Vec<String> {
            text.split('`').skip(1).step_by(2).flat_map(longs).collect()
        }
        let section = |from: &str, to: &str| -> &str {
            let start = text
                .find(from)
                .unwrap_or_else(|| panic!("{from} in the inventory"));
            let rest = &text[start..];
            let end = rest.find(to).unwrap_or(rest.len());
            &rest[..end]
        };
        let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // §1.2: the first cell of each table row.
        for line in section("### 1.2", "### 1.3").lines() {
            if let Some(first) = line.strip_prefix('|').and_then(|l| l.split('|').next()) {
                out.entry("global".into())
                    .or_default()
                    .extend(quoted(first));
            }
        }
        // §1.3: the first cell, for the commands of the Applies column.
        for line in section("### 1.3", "### 1.4").lines() {
            let cells: Vec<&str> = line.split('|').collect();
            if cells.len() < 7 || !cells[1].contains("`--") {
                continue;
            }
            let applies = cells[5].trim();
            let mut commands = Vec::new();
            for (code, command) in [
                ("E", "exec"),
                ("R", "run"),
                ("S", "shell"),
                ("T", "test"),
                ("IS", "instance start"),
                ("IR", "instance run"),
            ] {
                if applies == "all" || applies.split_whitespace().any(|w| w == code) {
                    commands.push(command);
                }
            }
            for c in commands {
                out.entry(c.into()).or_default().extend(quoted(cells[1]));
            }
        }
        // §1.4: prose and one table under bold command names; in table
        // rows only the first cell names flags.
        let wanted = [
            "build",
            "pull",
            "push",
            "inspect",
            "run-help",
            "sign",
            "verify",
            "instance list",
            "instance stop",
            "instance stats",
            "cache list",
            "cache clean",
            "overlay create",
            "key",
            "registry",
        ];
        let mut current: Option<String> = None;
        for line in section("### 1.4", "\n---").lines() {
            let text = match line.strip_prefix('|') {
                Some(l) => l.split('|').next().unwrap_or_default().to_string(),
                None => line.to_string(),
            };
            for (i, piece) in text.split("**").enumerate() {
                if i % 2 == 1 {
                    let name = piece.trim().trim_end_matches(':');
                    current = wanted.contains(&name).then(|| name.to_string());
                    continue;
                }
                if let Some(c) = &current {
                    out.entry(c.clone()).or_default().extend(quoted(piece));
                }
            }
        }
        out
    }

    /// Every flag of the reference inventory (§1.2 to §1.4) for the commands
    /// Vessel covers has a row. The inventory sits beside the fixture
    /// corpus (`../reference/apptainer-features.md` from it).
    #[test]
    fn every_flag_of_the_inventory_has_a_row() {
        let path = super::fixtures::fixtures().join("../reference/apptainer-features.md");
        let Ok(text) = std::fs::read_to_string(&path) else {
            super::skip::skip(format_args!(
                "the reference inventory is not there ({})",
                path.display()
            ));
            return;
        };
        let inventory = inventory_flags(&text);
        assert!(
            inventory.get("exec").is_some_and(|f| f.len() > 80),
            "{inventory:?}"
        );
        let rows = rows();
        let mut missing = Vec::new();
        for (command, flags) in &inventory {
            for flag in flags {
                let found = rows.iter().any(|r| {
                    r.flag == *flag
                        && (r.command == *command || r.command.starts_with(&format!("{command} ")))
                });
                if !found {
                    missing.push(format!("{command} {flag}"));
                }
            }
        }
        assert!(
            missing.is_empty(),
            "inventory flags without a row: {missing:?}"
        );
    }

    /// The README's compatibility table is this one, regenerated by
    /// `VESSEL_TEST_UPDATE_README=1 cargo test --bin vessel compat`.
    #[test]
    fn the_readme_has_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (start, end) = ("<!-- flags:begin -->\n", "<!-- flags:end -->");
        let (head, rest) = readme
            .split_once(start)
            .expect("README: flags:begin marker");
        let (_, tail) = rest.split_once(end).expect("README: flags:end marker");
        let wanted = format!("{head}{start}{}{end}{tail}", markdown());
        if vessel_config::process_var("VESSEL_TEST_UPDATE_README").is_some() {
            std::fs::write(&path, &wanted).unwrap();
        }
        assert!(
            readme == wanted,
            "the README's flag table is stale: run VESSEL_TEST_UPDATE_README=1 cargo test --bin vessel compat"
        );
    }
}
