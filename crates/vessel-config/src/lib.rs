//! Who Vessel is answering as, and the one registry of the environment
//! variables it reads.
//!
//! Vessel is a drop-in for Apptainer: installed as (or symlinked to)
//! `apptainer` or `singularity`, it names itself that way in messages and
//! reads that tool's variables first. Every variable Vessel honours is
//! declared once in [`vars`], with its documentation, so that help texts and
//! docs can be generated from one place.

pub mod conf;
pub mod conf_edit;
pub mod directives;
mod ecl;
mod env;
pub mod subid;
mod tool;

pub use env::{lookup, lookup_bool, EnvValue, EnvVar, Lookup, OwnVar};
pub use tool::Tool;

/// The user's own places: home, caches, keys and temporary files, each
/// decided once from the variables (`get` reads one: the process
/// environment, or a test's table).
pub mod paths {
    use std::path::PathBuf;

    use crate::{lookup, vars, Tool};

    fn value(
        tool: Tool,
        var: crate::EnvVar,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Option<String> {
        lookup(tool, var, get)
            .value
            .map(|v| v.value)
            .filter(|v| !v.is_empty())
    }

    /// `HOME`, else `/`.
    pub fn home(get: &impl Fn(&str) -> Option<String>) -> PathBuf {
        get("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| "/".into())
    }

    /// The pull cache: `$APPTAINER_CACHEDIR/cache`, else `~/.apptainer/cache`.
    pub fn cache_root(tool: Tool, get: &impl Fn(&str) -> Option<String>) -> PathBuf {
        match value(tool, vars::CACHEDIR, get) {
            Some(d) => PathBuf::from(d).join("cache"),
            None => home(get).join(".apptainer/cache"),
        }
    }

    /// The keyrings: `--keysdir` (`flag`), else `APPTAINER_KEYSDIR`, else
    /// `~/.apptainer/keys`.
    pub fn keys_dir(
        tool: Tool,
        flag: Option<PathBuf>,
        get: &impl Fn(&str) -> Option<String>,
    ) -> PathBuf {
        flag.or_else(|| value(tool, vars::KEYSDIR, get).map(PathBuf::from))
            .unwrap_or_else(|| home(get).join(".apptainer/keys"))
    }

    /// Where pulls and builds keep their temporary files: `APPTAINER_TMPDIR`
    /// (in the persona's prefix order), else `TMPDIR`, else `/tmp`.
    pub fn tmp_dir(tool: Tool, get: &impl Fn(&str) -> Option<String>) -> PathBuf {
        value(tool, vars::TMPDIR, get)
            .or_else(|| get("TMPDIR"))
            .filter(|t| !t.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| "/tmp".into())
    }
}

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

    /// The global message variables, checked (and their prefix conflicts
    /// reported) on every run.
    pub const GLOBAL: &[EnvVar] = &[DEBUG, VERBOSE, QUIET, SILENT, NOCOLOR, MESSAGELEVEL];

    // Options of exec, run, shell and test.
    pub const BIND: EnvVar =
        EnvVar::new("BIND", "Bind paths, added to --bind (src[:dst[:ro|rw]],…).");
    pub const BINDPATH: EnvVar =
        EnvVar::new("BINDPATH", "Bind paths, added to --bind (like BIND).");
    pub const MOUNT: EnvVar =
        EnvVar::new("MOUNT", "Mounts, added to --mount (type=bind,src=…,dst=…).");
    pub const CONTAIN: EnvVar = EnvVar::new(
        "CONTAIN",
        "Use minimal /dev and empty home and temporary directories (like --contain).",
    );
    pub const CONTAINALL: EnvVar = EnvVar::new(
        "CONTAINALL",
        "Contain file systems, PID, IPC and environment (like --containall).",
    );
    pub const CLEANENV: EnvVar = EnvVar::new(
        "CLEANENV",
        "Do not pass the host environment (like --cleanenv).",
    );
    pub const NO_HOME: EnvVar = EnvVar::new(
        "NO_HOME",
        "Do not mount the home directory (like --no-home).",
    );
    pub const HOME: EnvVar = EnvVar::new("HOME", "Home directory to use, SRC[:DST] (like --home).");
    pub const CWD: EnvVar = EnvVar::new(
        "CWD",
        "Initial working directory in the container (like --cwd).",
    );
    pub const PWD: EnvVar = EnvVar::new(
        "PWD",
        "Initial working directory in the container (like --pwd).",
    );
    pub const TARGET_PWD: EnvVar = EnvVar::new(
        "TARGET_PWD",
        "Initial working directory in the container (like --pwd).",
    );
    pub const WRITABLE: EnvVar =
        EnvVar::new("WRITABLE", "Mount a sandbox read-write (like --writable).");
    pub const WRITABLE_TMPFS: EnvVar = EnvVar::new(
        "WRITABLE_TMPFS",
        "Make the container writable, changes kept in memory (like --writable-tmpfs).",
    );
    pub const OVERLAY: EnvVar = EnvVar::new("OVERLAY", "Overlay directories (like --overlay).");
    pub const PID: EnvVar = EnvVar::new("PID", "Run in a new PID namespace (like --pid).");
    pub const UNSHARE_PID: EnvVar =
        EnvVar::new("UNSHARE_PID", "Run in a new PID namespace (like --pid).");
    pub const IPC: EnvVar = EnvVar::new("IPC", "Run in a new IPC namespace (like --ipc).");
    pub const UNSHARE_IPC: EnvVar =
        EnvVar::new("UNSHARE_IPC", "Run in a new IPC namespace (like --ipc).");
    pub const UTS: EnvVar = EnvVar::new("UTS", "Run in a new UTS namespace (like --uts).");
    pub const UNSHARE_UTS: EnvVar =
        EnvVar::new("UNSHARE_UTS", "Run in a new UTS namespace (like --uts).");
    pub const NET: EnvVar = EnvVar::new("NET", "Run in a new network namespace (like --net).");
    pub const UNSHARE_NET: EnvVar = EnvVar::new(
        "UNSHARE_NET",
        "Run in a new network namespace (like --net).",
    );
    pub const HOSTNAME: EnvVar =
        EnvVar::new("HOSTNAME", "Host name in the container (like --hostname).");
    pub const SCRATCH: EnvVar = EnvVar::new("SCRATCH", "Scratch directories (like --scratch).");
    pub const SCRATCHDIR: EnvVar =
        EnvVar::new("SCRATCHDIR", "Scratch directories (like --scratch).");
    pub const WORKDIR: EnvVar = EnvVar::new(
        "WORKDIR",
        "Host directory for contained /tmp, /var/tmp and home (like --workdir).",
    );
    pub const NO_MOUNT: EnvVar =
        EnvVar::new("NO_MOUNT", "Default mounts to leave out (like --no-mount).");
    pub const ENV_FILE: EnvVar = EnvVar::new(
        "ENV_FILE",
        "Files of variables to set in the container (like --env-file).",
    );
    pub const NOENV: EnvVar = EnvVar::new("NOENV", "Host variables not to pass (like --no-env).");
    pub const NO_EVAL: EnvVar = EnvVar::new(
        "NO_EVAL",
        "Do not evaluate variable values (like --no-eval).",
    );
    pub const APP: EnvVar = EnvVar::new("APP", "SCIF app to run (like --app).");
    pub const SHELL: EnvVar = EnvVar::new("SHELL", "Shell for `shell` (like --shell).");
    pub const FAKEROOT: EnvVar = EnvVar::new(
        "FAKEROOT",
        "Appear as root in the container (like --fakeroot).",
    );
    pub const UNSQUASH: EnvVar = EnvVar::new(
        "UNSQUASH",
        "Unpack the image instead of mounting it (like --unsquash).",
    );

    // Keys, signing and verification.
    pub const KEYSDIR: EnvVar = EnvVar::new(
        "KEYSDIR",
        "Directory of the OpenPGP keyrings (default ~/.apptainer/keys; like --keysdir).",
    );
    pub const VERIFY_KEY: EnvVar = EnvVar::new(
        "VERIFY_KEY",
        "PEM public key to verify DSSE signatures with (like verify --key).",
    );

    // Registries and the cache.
    pub const CACHEDIR: EnvVar = EnvVar::new(
        "CACHEDIR",
        "Parent of the cache directory (default ~/.apptainer; the cache is its cache/).",
    );
    pub const DISABLE_CACHE: EnvVar = EnvVar::new(
        "DISABLE_CACHE",
        "Do not read or write the cache (like --disable-cache).",
    );
    pub const DOCKER_USERNAME: EnvVar = EnvVar::new("DOCKER_USERNAME", "Registry user name.");
    pub const DOCKER_PASSWORD: EnvVar = EnvVar::new("DOCKER_PASSWORD", "Registry password.");
    pub const NOHTTPS: EnvVar = EnvVar::new(
        "NOHTTPS",
        "Use plain HTTP for registries (like --no-https).",
    );
    pub const NO_HTTPS: EnvVar = EnvVar::new(
        "NO_HTTPS",
        "Use plain HTTP for registries (like --no-https).",
    );
    pub const AUTH_FILE: EnvVar = EnvVar::new(
        "AUTH_FILE",
        "Docker-style credentials file (like --authfile).",
    );
    pub const PULLDIR: EnvVar = EnvVar::new(
        "PULLDIR",
        "Directory that pull writes images to (like --dir).",
    );
    pub const PULL_ARCH: EnvVar = EnvVar::new("PULL_ARCH", "Architecture to pull (like --arch).");
    pub const TMPDIR: EnvVar = EnvVar::new(
        "TMPDIR",
        "Directory for temporary files of pulls and builds.",
    );

    // Options Vessel parses and refuses by name (GPUs, networks, privileges,
    // cgroups): their variables are refused the same way.
    pub const NV: EnvVar = EnvVar::new(
        "NV",
        "NVIDIA GPU support (like --nv); refused until implemented.",
    );
    pub const NVCCLI: EnvVar = EnvVar::new(
        "NVCCLI",
        "GPUs through nvidia-container-cli (like --nvccli); refused until implemented.",
    );
    pub const ROCM: EnvVar = EnvVar::new(
        "ROCM",
        "AMD GPU support (like --rocm); refused until implemented.",
    );
    pub const NETWORK: EnvVar = EnvVar::new(
        "NETWORK",
        "Network type (like --network): only `none` is supported.",
    );
    pub const NETWORK_ARGS: EnvVar = EnvVar::new(
        "NETWORK_ARGS",
        "CNI network arguments (like --network-args); refused: needs CNI and root.",
    );
    pub const DNS: EnvVar = EnvVar::new(
        "DNS",
        "Name servers for the container's /etc/resolv.conf, comma-separated (like --dns).",
    );
    pub const NOSHIMINIT: EnvVar = EnvVar::new("NOSHIMINIT", "No init as PID 1 (like --no-init).");
    pub const NO_UMASK: EnvVar = EnvVar::new(
        "NO_UMASK",
        "Use umask 0022 instead of the user's (like --no-umask).",
    );
    pub const COMPAT: EnvVar = EnvVar::new("COMPAT", "OCI compatibility mode (like --compat).");
    pub const CONTAINLIBS: EnvVar = EnvVar::new(
        "CONTAINLIBS",
        "Host libraries to bind into /.singularity.d/libs, comma-separated (like --containlibs).",
    );
    pub const NO_PRIVS: EnvVar = EnvVar::new(
        "NO_PRIVS",
        "Drop all capabilities, even root's (like --no-privs); root only.",
    );
    pub const KEEP_PRIVS: EnvVar = EnvVar::new(
        "KEEP_PRIVS",
        "Keep all of root's capabilities (like --keep-privs); root only.",
    );
    pub const ADD_CAPS: EnvVar = EnvVar::new(
        "ADD_CAPS",
        "Capabilities to add, comma-separated (like --add-caps); root only.",
    );
    pub const DROP_CAPS: EnvVar = EnvVar::new(
        "DROP_CAPS",
        "Capabilities to drop, comma-separated or `all` (like --drop-caps); root only.",
    );
    pub const SECURITY: EnvVar = EnvVar::new(
        "SECURITY",
        "Security options (like --security); refused until implemented.",
    );
    pub const SHARENS: EnvVar = EnvVar::new(
        "SHARENS",
        "Share one container per node among a job step's commands (like --sharens).",
    );
    pub const APPLY_CGROUPS: EnvVar = EnvVar::new(
        "APPLY_CGROUPS",
        "cgroups limits from a file (like --apply-cgroups); refused: needs cgroups.",
    );
    pub const CPU_SHARES: EnvVar = EnvVar::new(
        "CPU_SHARES",
        "CPU shares (like --cpus and --cpu-shares); refused: needs cgroups.",
    );
    pub const CPUSET_CPUS: EnvVar = EnvVar::new(
        "CPUSET_CPUS",
        "CPUs to use (like --cpuset-cpus); refused: needs cgroups.",
    );
    pub const CPUSET_MEMS: EnvVar = EnvVar::new(
        "CPUSET_MEMS",
        "Memory nodes to use (like --cpuset-mems); refused: needs cgroups.",
    );
    pub const MEMORY: EnvVar = EnvVar::new(
        "MEMORY",
        "Memory limit (like --memory); refused: needs cgroups.",
    );
    pub const MEMORY_RESERVATION: EnvVar = EnvVar::new(
        "MEMORY_RESERVATION",
        "Memory soft limit (like --memory-reservation); refused: needs cgroups.",
    );
    pub const MEMORY_SWAP: EnvVar = EnvVar::new(
        "MEMORY_SWAP",
        "Swap limit (like --memory-swap); refused: needs cgroups.",
    );
    pub const PIDS_LIMIT: EnvVar = EnvVar::new(
        "PIDS_LIMIT",
        "Process limit (like --pids-limit); refused: needs cgroups.",
    );
    pub const BLKIO_WEIGHT: EnvVar = EnvVar::new(
        "BLKIO_WEIGHT",
        "Block I/O weight (like --blkio-weight); refused: needs cgroups.",
    );
    pub const BLKIO_WEIGHT_DEVICE: EnvVar = EnvVar::new(
        "BLKIO_WEIGHT_DEVICE",
        "Block I/O weight per device (like --blkio-weight-device); refused: needs cgroups.",
    );
    pub const OOM_KILL_DISABLE: EnvVar = EnvVar::new(
        "OOM_KILL_DISABLE",
        "No OOM killer (like --oom-kill-disable); refused: needs cgroups.",
    );

    pub const ALLOW_SETUID: EnvVar = EnvVar::new(
        "ALLOW_SETUID",
        "Mount the image without nosuid (like --allow-setuid); root only.",
    );
    pub const NO_PID: EnvVar = EnvVar::new(
        "NO_PID",
        "No PID namespace, even with --containall (like --no-pid).",
    );
    pub const UNDERLAY: EnvVar = EnvVar::new(
        "UNDERLAY",
        "Use an underlay instead of an overlay for the read-only root (like --underlay).",
    );
    pub const IGNORE_FAKEROOT_COMMAND: EnvVar = EnvVar::new(
        "IGNORE_FAKEROOT_COMMAND",
        "Never use fakeroot(1) (like --ignore-fakeroot-command): Vessel never does.",
    );
    pub const IGNORE_SUBUID: EnvVar = EnvVar::new(
        "IGNORE_SUBUID",
        "Map only root in --fakeroot's namespace, whatever /etc/subuid says (like --ignore-subuid).",
    );
    pub const IGNORE_USERNS: EnvVar = EnvVar::new(
        "IGNORE_USERNS",
        "Never use user namespaces (like --ignore-userns); root only.",
    );
    pub const NV_OFF: EnvVar = EnvVar::new(
        "NV_OFF",
        "Do not use NVIDIA GPUs even if the site always does (like --no-nv).",
    );
    pub const NO_NV: EnvVar = EnvVar::new(
        "NO_NV",
        "Do not use NVIDIA GPUs even if the site always does (like --no-nv).",
    );
    pub const ROCM_OFF: EnvVar = EnvVar::new(
        "ROCM_OFF",
        "Do not use AMD GPUs even if the site always does (like --no-rocm).",
    );
    pub const NO_ROCM: EnvVar = EnvVar::new(
        "NO_ROCM",
        "Do not use AMD GPUs even if the site always does (like --no-rocm).",
    );
    pub const COMPAT32: EnvVar = EnvVar::new(
        "COMPAT32",
        "32-bit GPU libraries too (like --compat32); refused until GPUs are supported.",
    );
    pub const FUSESPEC: EnvVar = EnvVar::new(
        "FUSESPEC",
        "FUSE mounts in the container (like --fusemount); refused.",
    );
    pub const INTEL_HPU: EnvVar = EnvVar::new(
        "INTEL_HPU",
        "Intel Gaudi devices (like --intel-hpu); refused.",
    );
    pub const NETNS_PATH: EnvVar = EnvVar::new(
        "NETNS_PATH",
        "Join a network namespace (like --netns-path); refused.",
    );
    pub const DOCKER_HOST: EnvVar = EnvVar::new(
        "DOCKER_HOST",
        "Docker daemon for docker-daemon: images (like --docker-host); refused.",
    );
    pub const DOCKER_LOGIN: EnvVar = EnvVar::new(
        "DOCKER_LOGIN",
        "Ask for registry credentials (like --docker-login).",
    );
    pub const RUNSCRIPT_TIMEOUT: EnvVar = EnvVar::new(
        "RUNSCRIPT_TIMEOUT",
        "Time limit of the runscript's evaluation (like --runscript-timeout); no effect in Vessel.",
    );

    // build, pull, push, sign and verify.
    pub const CONFIG_FILE: EnvVar = EnvVar::new(
        "CONFIG_FILE",
        "The configuration file to read instead of vessel.conf (like -c/--config); root, or an installation the user owns.",
    );
    pub const FORCE: EnvVar = EnvVar::new(
        "FORCE",
        "Overwrite the target image (like build and pull --force).",
    );
    pub const SANDBOX: EnvVar = EnvVar::new(
        "SANDBOX",
        "Write a sandbox directory (like build and pull --sandbox).",
    );
    pub const UPDATE: EnvVar = EnvVar::new(
        "UPDATE",
        "Build over an existing sandbox (like build --update).",
    );
    pub const NOTEST: EnvVar = EnvVar::new("NOTEST", "Skip %test (like build --notest).");
    pub const SECTION: EnvVar = EnvVar::new(
        "SECTION",
        "Build only these sections (like build --section).",
    );
    pub const JSON: EnvVar = EnvVar::new(
        "JSON",
        "The definition is JSON (like build --json); refused.",
    );
    pub const FIXPERMS: EnvVar = EnvVar::new(
        "FIXPERMS",
        "Give the owner rwX on everything built (like build --fix-perms).",
    );
    pub const MKSQUASHFS_ARGS: EnvVar = EnvVar::new(
        "MKSQUASHFS_ARGS",
        "Extra mksquashfs options (like build --mksquashfs-args).",
    );
    pub const BUILD_ARCH: EnvVar = EnvVar::new(
        "BUILD_ARCH",
        "Architecture to build for (like build --arch).",
    );
    pub const BUILD_ARCH_VARIANT: EnvVar = EnvVar::new(
        "BUILD_ARCH_VARIANT",
        "Architecture variant to build for (like build --arch-variant).",
    );
    pub const LIBRARY: EnvVar =
        EnvVar::new("LIBRARY", "Sylabs library URL (like --library); refused.");
    pub const NO_CLEANUP: EnvVar = EnvVar::new(
        "NO_CLEANUP",
        "Keep a failed pull's or build's files (like --no-cleanup).",
    );
    pub const DATA: EnvVar = EnvVar::new(
        "DATA",
        "Make a data container (like build --data); refused.",
    );
    pub const ENCRYPTION_PASSPHRASE: EnvVar = EnvVar::new(
        "ENCRYPTION_PASSPHRASE",
        "Passphrase to encrypt a build; refused: no encrypted images.",
    );
    pub const ENCRYPTION_PEM_PATH: EnvVar = EnvVar::new(
        "ENCRYPTION_PEM_PATH",
        "Key to encrypt a build; refused: no encrypted images.",
    );
    pub const ENCRYPTION_PEM_DATA: EnvVar = EnvVar::new(
        "ENCRYPTION_PEM_DATA",
        "Key to encrypt a build; refused: no encrypted images.",
    );
    pub const REPRODUCIBLE: EnvVar = EnvVar::new(
        "REPRODUCIBLE",
        "Deterministic images (like --reproducible); refused.",
    );
    pub const BUILDKIT_HOST: EnvVar = EnvVar::new(
        "BUILDKIT_HOST",
        "BuildKit daemon (like build --buildkit-host); refused.",
    );
    pub const IGNORE_PROOT: EnvVar = EnvVar::new(
        "IGNORE_PROOT",
        "Never use PRoot (like build --ignore-proot): Vessel never does.",
    );
    pub const PULL_NAME: EnvVar = EnvVar::new(
        "PULL_NAME",
        "File name of the pulled image (like pull --name).",
    );
    pub const PULLFOLDER: EnvVar = EnvVar::new(
        "PULLFOLDER",
        "Directory that pull writes images to (like --dir).",
    );
    pub const PULL_ARCH_VARIANT: EnvVar = EnvVar::new(
        "PULL_ARCH_VARIANT",
        "Architecture variant to pull (like pull --arch-variant).",
    );
    pub const ALLOW_UNSIGNED: EnvVar = EnvVar::new(
        "ALLOW_UNSIGNED",
        "Accept unsigned images (like -U): nothing to check for Vessel's sources.",
    );
    pub const ALLOW_UNAUTHENTICATED: EnvVar = EnvVar::new(
        "ALLOW_UNAUTHENTICATED",
        "Accept unauthenticated library images: nothing to check for Vessel's sources.",
    );
    pub const SIGN_KEY: EnvVar = EnvVar::new(
        "SIGN_KEY",
        "PEM private key to sign with (like sign --key).",
    );
    pub const LOCAL_VERIFY: EnvVar = EnvVar::new(
        "LOCAL_VERIFY",
        "Verify with local keyrings only (like verify --local): what Vessel always does.",
    );
    pub const VERIFY_CERTIFICATE: EnvVar = EnvVar::new(
        "VERIFY_CERTIFICATE",
        "Certificate to verify with (like verify --certificate); refused.",
    );
    pub const VERIFY_INTERMEDIATES: EnvVar = EnvVar::new(
        "VERIFY_INTERMEDIATES",
        "Intermediate certificates (like verify --certificate-intermediates); refused.",
    );
    pub const VERIFY_ROOTS: EnvVar = EnvVar::new(
        "VERIFY_ROOTS",
        "Root certificates (like verify --certificate-roots); refused.",
    );
    pub const VERIFY_OCSP: EnvVar = EnvVar::new(
        "VERIFY_OCSP",
        "Check certificates with OCSP (like verify --ocsp-verify); refused.",
    );

    /// Every variable, for documentation.
    pub const ALL: &[EnvVar] = &[
        DEBUG,
        VERBOSE,
        QUIET,
        SILENT,
        NOCOLOR,
        MESSAGELEVEL,
        BIND,
        BINDPATH,
        MOUNT,
        CONTAIN,
        CONTAINALL,
        CLEANENV,
        NO_HOME,
        HOME,
        CWD,
        PWD,
        TARGET_PWD,
        WRITABLE,
        WRITABLE_TMPFS,
        OVERLAY,
        PID,
        UNSHARE_PID,
        IPC,
        UNSHARE_IPC,
        UTS,
        UNSHARE_UTS,
        NET,
        UNSHARE_NET,
        HOSTNAME,
        SCRATCH,
        SCRATCHDIR,
        WORKDIR,
        NO_MOUNT,
        ENV_FILE,
        NOENV,
        NO_EVAL,
        APP,
        SHELL,
        FAKEROOT,
        UNSQUASH,
        KEYSDIR,
        VERIFY_KEY,
        CACHEDIR,
        DISABLE_CACHE,
        DOCKER_USERNAME,
        DOCKER_PASSWORD,
        NOHTTPS,
        NO_HTTPS,
        AUTH_FILE,
        PULLDIR,
        PULL_ARCH,
        TMPDIR,
        NV,
        NVCCLI,
        ROCM,
        NETWORK,
        NETWORK_ARGS,
        DNS,
        NOSHIMINIT,
        NO_UMASK,
        COMPAT,
        CONTAINLIBS,
        NO_PRIVS,
        KEEP_PRIVS,
        ADD_CAPS,
        DROP_CAPS,
        SECURITY,
        SHARENS,
        APPLY_CGROUPS,
        CPU_SHARES,
        CPUSET_CPUS,
        CPUSET_MEMS,
        MEMORY,
        MEMORY_RESERVATION,
        MEMORY_SWAP,
        PIDS_LIMIT,
        BLKIO_WEIGHT,
        BLKIO_WEIGHT_DEVICE,
        OOM_KILL_DISABLE,
        ALLOW_SETUID,
        NO_PID,
        UNDERLAY,
        IGNORE_FAKEROOT_COMMAND,
        IGNORE_SUBUID,
        IGNORE_USERNS,
        NV_OFF,
        NO_NV,
        ROCM_OFF,
        NO_ROCM,
        COMPAT32,
        FUSESPEC,
        INTEL_HPU,
        NETNS_PATH,
        DOCKER_HOST,
        DOCKER_LOGIN,
        RUNSCRIPT_TIMEOUT,
        CONFIG_FILE,
        FORCE,
        SANDBOX,
        UPDATE,
        NOTEST,
        SECTION,
        JSON,
        FIXPERMS,
        MKSQUASHFS_ARGS,
        BUILD_ARCH,
        BUILD_ARCH_VARIANT,
        LIBRARY,
        NO_CLEANUP,
        DATA,
        ENCRYPTION_PASSPHRASE,
        ENCRYPTION_PEM_PATH,
        ENCRYPTION_PEM_DATA,
        REPRODUCIBLE,
        BUILDKIT_HOST,
        IGNORE_PROOT,
        PULL_NAME,
        PULLFOLDER,
        PULL_ARCH_VARIANT,
        ALLOW_UNSIGNED,
        ALLOW_UNAUTHENTICATED,
        SIGN_KEY,
        LOCAL_VERIFY,
        VERIFY_CERTIFICATE,
        VERIFY_INTERMEDIATES,
        VERIFY_ROOTS,
        VERIFY_OCSP,
    ];
}

/// Vessel's own variables (no Apptainer equivalent), read by their full
/// name.
pub mod vessel_vars {
    use crate::env::OwnVar;

    pub const CONF_DIR: OwnVar = OwnVar::new(
        "VESSEL_CONF_DIR",
        "Directory of `vessel.conf` and the global keyring (default `/etc/vessel`); honoured for root and for an installation the user owns.",
    );
    pub const IMAGE_DRIVER: OwnVar = OwnVar::new(
        "VESSEL_IMAGE_DRIVER",
        "How SIF and SquashFS images are run without privilege: `auto` (default), `fuse` or `extract`.",
    );
    pub const EXTRACT_DIR: OwnVar = OwnVar::new(
        "VESSEL_EXTRACT_DIR",
        "Node-local cache of extracted images (default `/var/tmp/vessel-UID/extract`).",
    );
    pub const EXTRACT_MAX_GIB: OwnVar = OwnVar::new(
        "VESSEL_EXTRACT_MAX_GIB",
        "Size bound of the extract cache in GiB (default 20); least recently used entries go first.",
    );
    pub const FUSE_THREADS: OwnVar = OwnVar::new(
        "VESSEL_FUSE_THREADS",
        "Threads of the FUSE image server (default: from the CPUs the process may use).",
    );
    pub const FUSE_URING: OwnVar = OwnVar::new(
        "VESSEL_FUSE_URING",
        "`0` keeps the FUSE image server on `/dev/fuse` where the kernel offers FUSE over io_uring (`fuse.enable_uring`), which it otherwise uses: one queue and thread per CPU.",
    );
    pub const TEST_SUBID_DIR: OwnVar = OwnVar::new(
        "VESSEL_TEST_SUBID_DIR",
        "Tests only, and only for root: the directory whose `subuid`, `subgid` and `.pwd.lock` `config fakeroot` edits instead of those in `/etc`.",
    );

    /// Every one of them, for documentation.
    pub const ALL: &[OwnVar] = &[
        CONF_DIR,
        IMAGE_DRIVER,
        EXTRACT_DIR,
        EXTRACT_MAX_GIB,
        FUSE_THREADS,
        FUSE_URING,
        TEST_SUBID_DIR,
    ];
}

/// Reads a variable of the process environment: the one place that does,
/// so that every variable Vessel acts on is declared in [`vars`] or
/// [`vessel_vars`] (clippy's `disallowed-methods` keeps other code off
/// `std::env::var`). Host variables Vessel only passes on or follows as any
/// program would (`HOME`, `TMPDIR`, `PATH`) are read here too.
#[allow(clippy::disallowed_methods)]
pub fn process_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// [`process_var`] for values that need not be UTF-8 (paths).
#[allow(clippy::disallowed_methods)]
pub fn process_var_os(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name)
}

/// One of Vessel's own variables, from the process environment.
pub fn own_var(var: env::OwnVar) -> Option<String> {
    process_var(var.name)
}

/// The reference of every variable, as a Markdown table (the README's).
pub fn variables_markdown() -> String {
    let mut out = String::from("| variable | meaning |\n|---|---|\n");
    for v in vars::ALL {
        out.push_str(&format!(
            "| `APPTAINER_{0}` (`SINGULARITY_{0}`) | {1} |\n",
            v.key,
            v.doc.replace('|', "\\|")
        ));
    }
    for v in vessel_vars::ALL {
        out.push_str(&format!(
            "| `{}` | {} |\n",
            v.name,
            v.doc.replace('|', "\\|")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variable declared in the registry is listed in its `ALL`, and
    /// every `VESSEL_` variable the sources name is declared (test-only
    /// `VESSEL_TEST_*` aside).
    #[test]
    fn the_registry_is_complete() {
        let this = include_str!("lib.rs");
        let count = |ty: &str| {
            this.lines()
                .map(str::trim)
                .filter(|l| l.starts_with("pub const ") && l.contains(&format!(": {ty} =")))
                .count()
        };
        let declared = count("EnvVar");
        assert_eq!(
            declared,
            vars::ALL.len(),
            "a variable of `vars` is missing from vars::ALL"
        );
        let own = count("OwnVar");
        assert_eq!(
            own,
            vessel_vars::ALL.len(),
            "a variable is missing from vessel_vars::ALL"
        );
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut stack = vec![root.join("src"), root.join("crates")];
        let mut named = std::collections::BTreeSet::new();
        while let Some(p) = stack.pop() {
            if p.is_dir() {
                if p.ends_with("tests") || p.ends_with("target") {
                    continue;
                }
                stack.extend(std::fs::read_dir(&p).unwrap().flatten().map(|e| e.path()));
            } else if p.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&p).unwrap();
                for (i, _) in text.match_indices("\"VESSEL_") {
                    let name: String = text[i + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if !name.starts_with("VESSEL_TEST") && name.len() > "VESSEL_".len() {
                        named.insert(name);
                    }
                }
            }
        }
        let known: std::collections::BTreeSet<String> = vessel_vars::ALL
            .iter()
            .map(|v| v.name.to_string())
            .collect();
        let unknown: Vec<_> = named.difference(&known).collect();
        assert!(
            unknown.is_empty(),
            "declare these in vessel_vars: {unknown:?}"
        );
    }

    /// The README's variable table is the registry's, regenerated by
    /// `VESSEL_TEST_UPDATE_README=1 cargo test -p vessel-config`.
    #[test]
    fn the_readme_lists_every_variable() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
        let readme = std::fs::read_to_string(&path).unwrap();
        let (start, end) = ("<!-- variables:begin -->\n", "<!-- variables:end -->");
        let (head, rest) = readme
            .split_once(start)
            .expect("README: variables:begin marker");
        let (_, tail) = rest.split_once(end).expect("README: variables:end marker");
        let wanted = format!("{head}{start}{}{end}{tail}", variables_markdown());
        if process_var("VESSEL_TEST_UPDATE_README").is_some() {
            std::fs::write(&path, &wanted).unwrap();
        }
        assert!(
            readme == wanted,
            "the README's variable table is stale: run VESSEL_TEST_UPDATE_README=1 cargo test -p vessel-config"
        );
    }

    #[test]
    fn home_cache_and_keys() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let p = std::path::PathBuf::from;
        let none = env(&[]);
        assert_eq!(paths::home(&none), p("/"));
        assert_eq!(
            paths::cache_root(Tool::Vessel, &none),
            p("/.apptainer/cache")
        );
        let home = env(&[("HOME", "/h")]);
        assert_eq!(
            paths::cache_root(Tool::Vessel, &home),
            p("/h/.apptainer/cache")
        );
        assert_eq!(
            paths::keys_dir(Tool::Vessel, None, &home),
            p("/h/.apptainer/keys")
        );
        assert_eq!(paths::keys_dir(Tool::Vessel, Some(p("/k")), &home), p("/k"));
        let set = env(&[
            ("HOME", "/h"),
            ("APPTAINER_CACHEDIR", "/c"),
            ("SINGULARITY_CACHEDIR", "/s"),
            ("SINGULARITY_KEYSDIR", "/sk"),
        ]);
        assert_eq!(paths::cache_root(Tool::Apptainer, &set), p("/c/cache"));
        assert_eq!(paths::cache_root(Tool::Singularity, &set), p("/s/cache"));
        assert_eq!(paths::keys_dir(Tool::Apptainer, None, &set), p("/sk"));
        // An empty variable is no setting.
        let empty = env(&[("HOME", "/h"), ("APPTAINER_CACHEDIR", "")]);
        assert_eq!(
            paths::cache_root(Tool::Vessel, &empty),
            p("/h/.apptainer/cache")
        );
    }

    #[test]
    fn tmp_dir_rule() {
        let table = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let dir = |tool, pairs| paths::tmp_dir(tool, &table(pairs));
        assert_eq!(dir(Tool::Vessel, &[]), std::path::PathBuf::from("/tmp"));
        assert_eq!(
            dir(Tool::Vessel, &[("TMPDIR", "/t")]),
            std::path::PathBuf::from("/t")
        );
        assert_eq!(
            dir(Tool::Vessel, &[("TMPDIR", "")]),
            std::path::PathBuf::from("/tmp")
        );
        let both = &[
            ("TMPDIR", "/t"),
            ("SINGULARITY_TMPDIR", "/s"),
            ("APPTAINER_TMPDIR", "/a"),
        ];
        assert_eq!(dir(Tool::Vessel, both), std::path::PathBuf::from("/a"));
        assert_eq!(dir(Tool::Singularity, both), std::path::PathBuf::from("/s"));
        assert_eq!(
            dir(
                Tool::Vessel,
                &[("TMPDIR", "/t"), ("SINGULARITY_TMPDIR", "/s")]
            ),
            std::path::PathBuf::from("/s")
        );
    }
}
