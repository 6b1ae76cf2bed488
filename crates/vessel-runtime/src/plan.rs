//! The launch plan: everything a container start does, as data. Built from
//! the options, the host and the image's files, it can be checked by tests
//! without namespaces or privileges.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use vessel_image::RootDir;
use vessel_sys::caps::Capability;
use vessel_sys::ns::Namespaces;

use crate::env::{container_env, script_args, EnvInput};
use crate::identity;
use crate::options::{Action, DevMode, Host, LaunchOptions};

/// How the image's tree becomes the container's `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootMode {
    /// An overlay with a private tmpfs upper layer, for mount points only;
    /// remounted read-only before the payload starts.
    ReadOnly,
    /// As `ReadOnly`, but left writable: changes vanish with the container.
    WritableTmpfs,
    /// The sandbox directory itself, read-write.
    Writable,
    /// An overlay whose upper layer is a directory the user gave.
    Overlay { upper: PathBuf },
}

/// How the root's layers are put together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Layering {
    /// The kernel's overlayfs (in a user namespace: Linux 5.11 or newer).
    #[default]
    Kernel,
    /// `fuse-overlayfs`: for an upper layer on FUSE (an ext3 image through
    /// `fuse2fs`), kernels without overlayfs in user namespaces, and
    /// `enable overlay = driver`.
    FuseOverlayfs,
    /// No overlay, for a read-only root: a tmpfs holding the image's
    /// top-level entries as binds, where mount points can be made, as
    /// Apptainer's underlay (`--underlay`, `enable overlay = no`, `enable
    /// underlay = preferred`).
    Underlay,
}

impl Layering {
    /// The layering `opts` ask for with `root_mode` (the kernel may still
    /// refuse an overlay at mount time: see the launch's fallback).
    pub fn chosen(opts: &LaunchOptions, root_mode: &RootMode) -> Layering {
        match root_mode {
            RootMode::Writable => Layering::Kernel,
            RootMode::ReadOnly if opts.underlay || opts.site.underlay => Layering::Underlay,
            _ if opts.site.overlay_driver => Layering::FuseOverlayfs,
            _ => Layering::Kernel,
        }
    }
}

/// One step of assembling the container's file system. Destinations are
/// container paths, resolved inside the root when carried out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mount {
    /// A host path bound at `dst`. `recursive` brings the mounts below it.
    Bind {
        src: PathBuf,
        dst: PathBuf,
        readonly: bool,
        recursive: bool,
    },
    /// A new tmpfs at `dst`.
    Tmpfs {
        dst: PathBuf,
        size_mib: Option<u64>,
        mode: u32,
    },
    /// A directory of the session (private, empty at start) bound at `dst`.
    SessionDir { name: String, dst: PathBuf },
    /// A file of the session with `content`, bound at `dst`.
    SessionFile {
        name: String,
        content: String,
        dst: PathBuf,
        readonly: bool,
    },
    /// A symbolic link created at `at` (inside a tmpfs the plan made).
    Symlink { target: String, at: PathBuf },
    /// Symbolic links `(target, name)` in the directory `dir`, which is
    /// made in the session's layer when the image lacks it: one step for
    /// many links (a GPU driver's libraries).
    Symlinks {
        dir: PathBuf,
        links: Vec<(String, String)>,
    },
    /// A new `devpts` instance at `dst`.
    Devpts { dst: PathBuf },
}

/// The first phase: what the session is, decided from the options, the
/// host and the kind of image before anything is touched. The executor
/// creates the namespaces and the session tmpfs from this alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionPlan {
    pub namespaces: Namespaces,
    /// Root inside, mapped to the user (and subordinate ids) outside.
    pub fakeroot: bool,
    /// With `fakeroot`, map only root, even with subordinate ids.
    pub ignore_subuid: bool,
    pub hostname: Option<String>,
    /// Bring up loopback in the new network namespace.
    pub loopback: bool,
    /// Size of the session tmpfs, in MiB.
    pub session_mib: u64,
    /// The session is a ramfs, with no size (`memory fs type = ramfs`).
    pub ramfs: bool,
    pub root_mode: RootMode,
    /// The host's GPU driver files the GPU options give the container.
    pub gpus: crate::gpu::GpuFiles,
    pub warnings: Vec<String>,
}

/// The second phase: the container's file system and process, decided
/// from the mounted image.
#[derive(Clone, Debug)]
pub struct LaunchPlan {
    /// The image's root file system on the host.
    pub lower: PathBuf,
    /// Read-only overlay directories stacked on the image, topmost first.
    pub read_only_layers: Vec<PathBuf>,
    pub root_mode: RootMode,
    pub layering: Layering,
    /// The container has its own user namespace: overlayfs keeps its
    /// whiteouts and opaque directories in `user.overlay.*` attributes
    /// (`userxattr`), since `trusted.*` ones need real root; without them
    /// removing an image directory fails with an I/O error.
    pub user_namespace: bool,
    /// Mount a new `/proc` (with a PID namespace) instead of the host's.
    pub new_proc: bool,
    /// In a PID namespace, a small init is PID 1 and reaps (not with
    /// `--no-init`).
    pub shim_init: bool,
    /// The umask the command starts with; `None` keeps the user's.
    pub umask: Option<u32>,
    /// Set `no_new_privs` before the command (always, except for real
    /// root with capabilities, as in Apptainer).
    pub no_new_privs: bool,
    /// Real root's capabilities, limited to these before the command;
    /// `None` leaves them (an unprivileged user has none on the host).
    pub capabilities: Option<Vec<Capability>>,
    /// Mount the root without `nosuid` (`--allow-setuid`, root only).
    pub allow_setuid: bool,
    pub mounts: Vec<Mount>,
    /// `--nvccli`: run once the root is assembled, with its path last.
    pub nvccli: Option<crate::gpu::nvccli::Call>,
    pub cwd: PathBuf,
    pub home: PathBuf,
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// `argv` and `env` made without the image's shell, when that gives
    /// the same.
    pub native: Option<crate::env_native::NativeEnv>,
    /// What the command was made from, for members of a shared container.
    pub basis: CommandBasis,
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{0}")]
    Invalid(String),
    #[error("bind source {path} {problem}")]
    BindSource { path: PathBuf, problem: String },
    #[error("{flag} {path}: {problem}")]
    HostLibrary {
        flag: &'static str,
        path: PathBuf,
        problem: String,
    },
    #[error("while reading the image: {0}")]
    Image(#[from] std::io::Error),
    #[error(transparent)]
    Gpu(#[from] crate::gpu::GpuError),
}

/// Session tmpfs size when nothing writable lives in it: identity files,
/// mount points and contained directories only.
pub const SESSION_BASE_MIB: u64 = 16;

/// Paths that are never bound as the working directory: they are the
/// container's own.
const SYSTEM_DIRS: &[&str] = &[
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/root", "/run", "/sbin",
    "/sys", "/tmp", "/usr", "/var", "/var/tmp",
];

/// The session plan for running `opts` on `host`; `is_sandbox` tells
/// whether the image is a directory (only those can be `--writable`).
pub fn session(
    opts: &LaunchOptions,
    host: &Host,
    is_sandbox: bool,
) -> Result<SessionPlan, PlanError> {
    let mut warnings = Vec::new();
    let root_mode = if opts.writable {
        if !is_sandbox {
            return Err(PlanError::Invalid(
                "--writable needs a sandbox directory: this image is read-only (use --writable-tmpfs or --overlay DIR for changes)".into(),
            ));
        }
        if opts.writable_tmpfs {
            warnings
                .push("--writable and --writable-tmpfs were both given: using --writable".into());
        }
        if !opts.overlays.is_empty() {
            return Err(PlanError::Invalid(
                "--overlay cannot be combined with --writable".into(),
            ));
        }
        RootMode::Writable
    } else if let Some(o) = opts.overlays.iter().find(|o| !o.readonly) {
        if opts.overlays.iter().filter(|o| !o.readonly).count() > 1 {
            return Err(PlanError::Invalid(
                "only one writable --overlay is allowed".into(),
            ));
        }
        RootMode::Overlay {
            upper: o.path.clone(),
        }
    } else if opts.writable_tmpfs {
        RootMode::WritableTmpfs
    } else {
        RootMode::ReadOnly
    };
    let gpus = crate::gpu::find(&opts.gpus, opts.contain, host.uid, &host.env)?;
    warnings.extend(gpus.warnings.iter().cloned());
    // The tmpfs holds the writable layer only when it is the upper one.
    let writable_mib = match root_mode {
        RootMode::WritableTmpfs => opts.tmpfs_size_mib,
        _ => 0,
    };
    Ok(SessionPlan {
        // Real root mounts without one and keeps its real identity, as with
        // Apptainer.
        namespaces: Namespaces {
            user: host.uid != 0,
            mount: true,
            pid: opts.pid,
            ipc: opts.ipc,
            uts: opts.uts || opts.hostname.is_some(),
            net: opts.net,
        },
        fakeroot: opts.fakeroot,
        ignore_subuid: opts.ignore_subuid,
        hostname: opts.hostname.clone(),
        loopback: opts.net,
        session_mib: SESSION_BASE_MIB + writable_mib,
        ramfs: opts.site.ramfs,
        root_mode,
        gpus,
        warnings,
    })
}

/// Builds the plan for running `opts` on `host`, with the image's tree at
/// `lower` (`image_path` is what `APPTAINER_CONTAINER` reports): the
/// session plan, then the root plan of [`build_root`].
pub fn build(
    opts: &LaunchOptions,
    host: &Host,
    lower: &Path,
    image_path: &Path,
    is_sandbox: bool,
) -> Result<LaunchPlan, PlanError> {
    build_root(
        opts,
        host,
        &session(opts, host, is_sandbox)?,
        lower,
        image_path,
    )
}

/// The root plan: mounts, identity, environment and argv, from the image
/// mounted at `lower` and the decided `session`.
pub fn build_root(
    opts: &LaunchOptions,
    host: &Host,
    session: &SessionPlan,
    lower: &Path,
    image_path: &Path,
) -> Result<LaunchPlan, PlanError> {
    let action = opts
        .action
        .clone()
        .ok_or_else(|| PlanError::Invalid("no action given".into()))?;
    let mut warnings = session.warnings.clone();
    let site = &opts.site;
    // What neither the user (`--no-mount`) nor the site turned off.
    let no_mount = |what: &str| {
        opts.no_mount.iter().any(|n| n == what)
            || match what {
                "proc" => !site.proc,
                "sys" => !site.sys,
                "dev" => site.dev == DevMode::No,
                "devpts" => !site.devpts,
                "home" => !site.home,
                "tmp" => !site.tmp,
                "cwd" => !site.cwd,
                _ => false,
            }
    };
    // The writable overlay is the one `opts` name now: the launch mounted
    // an image's and reopened a directory's in the container's namespace.
    let root_mode = match &session.root_mode {
        RootMode::Overlay { upper } => RootMode::Overlay {
            upper: opts
                .overlays
                .iter()
                .find(|o| !o.readonly)
                .map_or_else(|| upper.clone(), |o| o.path.clone()),
        },
        other => other.clone(),
    };
    let layering = Layering::chosen(opts, &root_mode);

    let image_root = RootDir::new(lower);
    let mut mounts = Vec::new();
    let new_proc = opts.pid;
    if !no_mount("proc") && !new_proc {
        mounts.push(bind("/proc", "/proc", false, true));
    }
    if !no_mount("sys") {
        mounts.push(bind("/sys", "/sys", false, true));
    }
    // The site's `mount dev = minimal` stages one as --contain does.
    let minimal = !no_mount("dev") && (opts.contain || site.dev == DevMode::Minimal);
    if !no_mount("dev") {
        if minimal {
            minimal_dev(&mut mounts, !no_mount("devpts"));
        } else {
            mounts.push(bind("/dev", "/dev", false, true));
            // A shared container's ranks share a /dev/shm of its own: what
            // they leave there (MPI's segments of killed ranks) goes with
            // the container.
            if opts.sharens {
                mounts.push(Mount::Tmpfs {
                    dst: "/dev/shm".into(),
                    size_mib: None,
                    mode: 0o1777,
                });
            }
        }
    }

    // Temporary directories.
    if !no_mount("tmp") {
        for (dst, sub) in [("/tmp", "tmp"), ("/var/tmp", "var_tmp")] {
            mounts.push(if opts.contain {
                private_dir(opts.workdir.as_deref(), Path::new(sub), sub, Path::new(dst))?
            } else {
                bind(dst, dst, false, false)
            });
        }
    }

    // Home.
    // With --fakeroot the user is root inside, whose home is /root.
    let (home_src, home_dst) = match &opts.home {
        Some((src, dst)) => (src.clone(), dst.clone()),
        None if opts.fakeroot => (host.home.clone(), PathBuf::from("/root")),
        None => (host.home.clone(), host.home.clone()),
    };
    if !opts.no_home && !no_mount("home") && home_dst != Path::new("/") {
        if opts.contain && opts.home.is_none() {
            mounts.push(private_dir(
                opts.workdir.as_deref(),
                Path::new("home"),
                "home",
                &home_dst,
            )?);
        } else {
            mounts.push(Mount::Bind {
                src: home_src,
                dst: home_dst.clone(),
                readonly: false,
                recursive: true,
            });
        }
    }

    // The working directory, unless it is the container's own or already there.
    let cwd_dst = opts.cwd.clone().unwrap_or_else(|| {
        if opts.contain {
            home_dst.clone()
        } else {
            host.cwd.clone()
        }
    });
    let home_bound = !opts.no_home && !no_mount("home");
    let under_tmp =
        !no_mount("tmp") && (host.cwd.starts_with("/tmp") || host.cwd.starts_with("/var/tmp"));
    let already_there = SYSTEM_DIRS.iter().any(|d| Path::new(d) == host.cwd)
        || (home_bound && host.cwd.starts_with(&home_dst))
        || under_tmp;
    if !opts.contain && !no_mount("cwd") && opts.cwd.is_none() && !already_there {
        mounts.push(Mount::Bind {
            src: host.cwd.clone(),
            dst: host.cwd.clone(),
            readonly: false,
            recursive: true,
        });
    }

    // `mount hostfs`: the host's file systems, each at its place.
    if site.hostfs && !opts.contain {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for p in host_file_systems(&mountinfo) {
            // One the user cannot read would fail the run: Apptainer skips it.
            if std::fs::metadata(&p).is_ok_and(|m| !m.is_dir() || std::fs::read_dir(&p).is_ok()) {
                mounts.push(Mount::Bind {
                    src: p.clone(),
                    dst: p,
                    readonly: false,
                    recursive: false,
                });
            } else {
                tracing::debug!(
                    "mount hostfs: skipping {}, which you cannot read",
                    p.display()
                );
            }
        }
    }
    // The site's `bind path`s (by default /etc/localtime and /etc/hosts,
    // which --contain keeps, as Apptainer does); a missing source is
    // skipped, with a warning when the site named it.
    for b in &site.binds {
        let default = ["/etc/localtime", "/etc/hosts"]
            .iter()
            .any(|d| Path::new(d) == b.src);
        let dst = b.dst.to_string_lossy();
        if (opts.contain && !default) || no_mount(&dst) || no_mount("bind-paths") {
            continue;
        }
        if !b.src.exists() {
            if !default {
                warnings.push(format!(
                    "bind path = {} (in {}): {} doesn't exist: not bound",
                    b.src.display(),
                    site.file,
                    b.src.display()
                ));
            }
            continue;
        }
        mounts.push(Mount::Bind {
            src: b.src.clone(),
            dst: b.dst.clone(),
            readonly: b.readonly,
            recursive: true,
        });
    }
    // The host's resolv.conf, unless --dns writes its own.
    let resolv = "/etc/resolv.conf";
    if site.resolv_conf && opts.dns.is_empty() && !no_mount(resolv) && Path::new(resolv).exists() {
        mounts.push(bind(resolv, resolv, true, false));
    }
    if !opts.dns.is_empty() {
        mounts.push(Mount::SessionFile {
            name: "resolv.conf".into(),
            content: resolv_conf(&opts.dns),
            dst: "/etc/resolv.conf".into(),
            readonly: true,
        });
    }
    let mut library_dirs = Vec::new();
    let gpus = &session.gpus;
    let gpu_libs = |libs: &[(PathBuf, String)]| -> Vec<(PathBuf, OsString)> {
        libs.iter()
            .map(|(p, n)| (p.clone(), OsString::from(n)))
            .collect()
    };
    // A library directory the image leaves empty becomes a small tmpfs:
    // links made there cost nothing, where each new name in the image's
    // own directory is a lookup in every layer below (through FUSE, a
    // round trip to the image server each).
    for (dir, libs) in [
        (LIBS_DIR, &gpus.libs),
        (crate::gpu::LIBS32_DIR, &gpus.libs32),
    ] {
        if !libs.is_empty() && image_root.list_dir(dir)?.is_empty() {
            mounts.push(Mount::Tmpfs {
                dst: dir.into(),
                size_mib: Some(1),
                mode: 0o755,
            });
        }
    }
    let contained = host_libraries("--containlibs", &opts.containlibs, &mut mounts)?;
    let mut host_dirs = Vec::new();
    let driver = link_libraries(
        Path::new(LIBS_DIR),
        &gpu_libs(&gpus.libs),
        &mut host_dirs,
        &mut mounts,
    );
    if contained || driver {
        library_dirs.push(LIBS_DIR.to_string());
    }
    let libs32 = Path::new(crate::gpu::LIBS32_DIR);
    if link_libraries(libs32, &gpu_libs(&gpus.libs32), &mut host_dirs, &mut mounts) {
        library_dirs.push(crate::gpu::LIBS32_DIR.to_string());
    }
    library_dirs.extend(gpus.library_dirs.iter().cloned());
    for (src, dst, readonly) in &gpus.binds {
        mounts.push(Mount::Bind {
            src: src.clone(),
            dst: dst.clone(),
            readonly: *readonly,
            recursive: false,
        });
    }
    // The host's /dev has the driver's devices already; a minimal one gets
    // those of the job's GPUs, and a CDI spec's devices.
    let host_dev = !minimal && !no_mount("dev");
    for (src, dst) in &gpus.cdi_devices {
        if host_dev && src != dst && dst.starts_with("/dev") {
            return Err(PlanError::Invalid(format!(
                "a CDI device puts {} at {}, which cannot be made in the host's /dev the container shares: add --contain (a minimal /dev)",
                src.display(),
                dst.display()
            )));
        }
    }
    let devices = gpus.devices.iter().filter(|_| minimal);
    let cdi_devices = gpus
        .cdi_devices
        .iter()
        .filter(|(src, dst)| !(host_dev && src == dst));
    for (src, dst) in devices.chain(cdi_devices) {
        mounts.push(Mount::Bind {
            src: src.clone(),
            dst: dst.clone(),
            readonly: false,
            recursive: false,
        });
    }
    let image_file = |p: &str| -> Result<String, PlanError> {
        Ok(image_root
            .read_file(p, 16 << 20)?
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default())
    };
    let home_text = home_dst.to_string_lossy().into_owned();
    // As fakeroot the user is the image's root: its own files stay as they are.
    if !opts.fakeroot && site.passwd {
        mounts.push(Mount::SessionFile {
            name: "passwd".into(),
            content: identity::passwd(&image_file("/etc/passwd")?, host, &home_text),
            dst: "/etc/passwd".into(),
            readonly: false,
        });
    }
    if !opts.fakeroot && site.group {
        mounts.push(Mount::SessionFile {
            name: "group".into(),
            content: identity::group(&image_file("/etc/group")?, host),
            dst: "/etc/group".into(),
            readonly: false,
        });
    }
    if let Some(h) = &session.hostname {
        mounts.push(Mount::SessionFile {
            name: "hostname".into(),
            content: format!("{h}\n"),
            dst: "/etc/hostname".into(),
            readonly: false,
        });
    }

    // The user's binds, after the defaults so that they can land inside them.
    for b in &opts.binds {
        check_bind_source(&b.src)?;
        mounts.push(Mount::Bind {
            src: b.src.clone(),
            dst: b.dst.clone(),
            readonly: b.readonly,
            recursive: true,
        });
    }
    for (i, dst) in opts.scratch.iter().enumerate() {
        let name = dst
            .to_string_lossy()
            .trim_start_matches('/')
            .replace('/', "_");
        let name = if name.is_empty() {
            format!("scratch{i}")
        } else {
            name
        };
        let session_name = format!("scratch{i}");
        mounts.push(private_dir(
            opts.workdir.as_deref(),
            &Path::new("scratch").join(name),
            &session_name,
            dst,
        )?);
    }

    // Environment and command.
    let basis = CommandBasis {
        home: home_text,
        image_path: image_path.to_string_lossy().into_owned(),
        env_scripts: env_scripts(&image_root, opts.app.as_deref())?,
        library_dirs,
        device_env: gpus.env.clone(),
        has_sh: image_root.resolve("/bin/sh")?.is_some(),
    };
    let mut command = basis.command(opts, host, &action)?;
    warnings.extend(command.warnings);
    // A shared container (`--sharens`) runs no command of its own: its
    // members bring theirs. Its shell would only source the environment
    // scripts and end, on the path every rank of the job waits on.
    if opts.sharens && matches!(&action, Action::Exec(args) if args.is_empty()) {
        command.argv.clear();
    }

    Ok(LaunchPlan {
        lower: lower.to_path_buf(),
        read_only_layers: opts
            .overlays
            .iter()
            .filter(|o| o.readonly)
            .map(|o| o.path.clone())
            .collect(),
        root_mode,
        layering,
        user_namespace: session.namespaces.user,
        new_proc,
        shim_init: new_proc && !opts.no_init,
        umask: opts.no_umask.then_some(0o022),
        no_new_privs: opts.root_privileges.as_ref().is_none_or(|p| p.no_new_privs),
        capabilities: opts.root_privileges.as_ref().map(|p| p.keep.clone()),
        allow_setuid: opts.allow_setuid,
        mounts,
        nvccli: session.gpus.nvccli.clone(),
        cwd: cwd_dst,
        home: home_dst,
        argv: command.argv,
        env: command.env,
        native: command.native,
        basis,
        warnings,
    })
}

/// What the container's command is made from besides the host's
/// environment and the options: facts of the mounted image and of the
/// container's mounts. A member of a shared container
/// ([`crate::instance::sharens`]) makes its own command from its own
/// environment and the basis its container was made with.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CommandBasis {
    /// `$HOME` in the container.
    pub home: String,
    /// What `APPTAINER_CONTAINER` reports.
    pub image_path: String,
    /// The image's environment scripts, in the order they are sourced.
    pub env_scripts: Vec<String>,
    /// Directories of host libraries bound in, for `LD_LIBRARY_PATH`.
    pub library_dirs: Vec<String>,
    /// Variables the devices ask for.
    pub device_env: Vec<(String, String)>,
    /// The image has a `/bin/sh` to run the environment scripts with.
    pub has_sh: bool,
}

/// A container's command: what is executed, with what environment.
#[derive(Debug)]
pub struct Command {
    pub argv: Vec<OsString>,
    pub env: Vec<(OsString, OsString)>,
    /// `exec`'s command and environment made without the shell, when
    /// that gives the same ([`crate::env_native`]).
    pub native: Option<crate::env_native::NativeEnv>,
    pub warnings: Vec<String>,
}

impl CommandBasis {
    /// The command that runs `action` for `host`'s environment with `opts`.
    pub fn command(
        &self,
        opts: &LaunchOptions,
        host: &Host,
        action: &Action,
    ) -> Result<Command, PlanError> {
        let env = container_env(&EnvInput {
            host: &host.env,
            cleanenv: opts.cleanenv,
            no_env: &opts.no_env,
            env_files: &opts.env_files,
            env_flags: &opts.env,
            no_eval: opts.no_eval,
            home: &self.home,
            image_path: &self.image_path,
            app: opts.app.as_deref(),
            action,
            product: &opts.product,
            env_scripts: &self.env_scripts,
            library_dirs: &self.library_dirs,
            device_env: &self.device_env,
            gpus: opts.gpus.any(),
        });
        let mut warnings = env.warnings;
        let native = match action {
            Action::Exec(args) if self.has_sh && !args.is_empty() => {
                env.native.map(|n| crate::env_native::NativeEnv {
                    command: args.clone(),
                    ..n
                })
            }
            _ => None,
        };
        let argv = if self.has_sh {
            let mut argv: Vec<OsString> = vec!["/bin/sh".into(), "-c".into(), env.script.into()];
            argv.extend(script_args(action));
            argv
        } else {
            match action {
                Action::Exec(args) => {
                    warnings.push(
                        "the container has no /bin/sh: its environment scripts are not applied"
                            .into(),
                    );
                    args.clone()
                }
                _ => {
                    return Err(PlanError::Invalid(format!(
                        "the container has no /bin/sh, which `{}` needs (use exec with a program)",
                        action.verb()
                    )))
                }
            }
        };
        Ok(Command {
            argv,
            env: env.initial,
            native,
            warnings,
        })
    }
}

/// The directory of the container where host libraries are bound, which
/// Apptainer's images put on `LD_LIBRARY_PATH` (`99-base.sh`).
pub const LIBS_DIR: &str = "/.singularity.d/libs";

/// The plan step "host libraries into `/.singularity.d/libs`": each file of
/// `libs` bound read-only at `LIBS_DIR/<its name>`, for `--containlibs`
/// and the GPU libraries; `flag` names who asked, in errors. The first of
/// two libraries of one name wins, as it would on a library path. Returns
/// whether any was bound (the directory then goes on `LD_LIBRARY_PATH`).
/// Each must be a file the user can read: a missing one is an error here,
/// not a broken program later.
pub fn host_libraries(
    flag: &'static str,
    libs: &[PathBuf],
    mounts: &mut Vec<Mount>,
) -> Result<bool, PlanError> {
    let mut named = Vec::new();
    for lib in libs {
        let name = lib.file_name().ok_or_else(|| PlanError::HostLibrary {
            flag,
            path: lib.clone(),
            problem: "not a file name".into(),
        })?;
        named.push((lib.clone(), name.to_os_string()));
    }
    bind_libraries(flag, Path::new(LIBS_DIR), &named, mounts)
}

/// [`host_libraries`] with the name each library is bound under in `dir`
/// (a GPU driver's, as the linker cache names them).
pub fn bind_libraries(
    flag: &'static str,
    dir: &Path,
    libs: &[(PathBuf, std::ffi::OsString)],
    mounts: &mut Vec<Mount>,
) -> Result<bool, PlanError> {
    let mut names = Vec::new();
    for (lib, name) in libs {
        let problem = |problem: String| PlanError::HostLibrary {
            flag,
            path: lib.clone(),
            problem,
        };
        match std::fs::metadata(lib) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Err(problem("not a file (give library files)".into())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(problem("doesn't exist".into()))
            }
            Err(e) => return Err(problem(e.to_string())),
        }
        std::fs::File::open(lib).map_err(|e| problem(format!("cannot be read: {e}")))?;
        if names.contains(&name) {
            continue;
        }
        names.push(name);
        mounts.push(Mount::Bind {
            src: lib.clone(),
            dst: dir.join(name),
            readonly: true,
            recursive: false,
        });
    }
    Ok(!names.is_empty())
}

/// Where the host directories of a GPU driver's libraries are bound, one
/// numbered directory each.
pub const HOST_LIBS_DIR: &str = "/.singularity.d/hostlibs";

/// A GPU driver's libraries in `dir`, as symbolic links into their host
/// directories, each bound once (read-only) under [`HOST_LIBS_DIR`]: a
/// driver has dozens of libraries in one or two directories, and a bind
/// per library would cost every rank of a job a mount each. `host_dirs`
/// holds the directories bound so far. A library whose real file is gone
/// is left out. Returns whether any was linked.
pub fn link_libraries(
    dir: &Path,
    libs: &[(PathBuf, std::ffi::OsString)],
    host_dirs: &mut Vec<PathBuf>,
    mounts: &mut Vec<Mount>,
) -> bool {
    let mut links: Vec<(String, String)> = Vec::new();
    for (lib, name) in libs {
        let name = name.to_string_lossy().into_owned();
        if links.iter().any(|(_, n)| *n == name) {
            continue;
        }
        let Some(real) = real_library(lib) else {
            continue;
        };
        let (Some(host_dir), Some(file)) = (real.parent(), real.file_name()) else {
            continue;
        };
        let index = match host_dirs.iter().position(|d| d == host_dir) {
            Some(i) => i,
            None => {
                host_dirs.push(host_dir.to_path_buf());
                mounts.push(Mount::Bind {
                    src: host_dir.to_path_buf(),
                    dst: Path::new(HOST_LIBS_DIR).join((host_dirs.len() - 1).to_string()),
                    readonly: true,
                    recursive: false,
                });
                host_dirs.len() - 1
            }
        };
        let target = format!("{HOST_LIBS_DIR}/{index}/{}", file.to_string_lossy());
        links.push((target, name));
    }
    if links.is_empty() {
        return false;
    }
    mounts.push(Mount::Symlinks {
        dir: dir.to_path_buf(),
        links,
    });
    true
}

/// Where a library of the linker cache really is: the cache's path when it
/// is a file or a link to a name beside it (the usual `libcuda.so.1 ->
/// libcuda.so.550.54`: it resolves inside the bound directory, and is
/// taken as it is, one `readlink` per library on every start), else the
/// fully resolved path; `None` when it is gone.
fn real_library(lib: &Path) -> Option<PathBuf> {
    match std::fs::read_link(lib) {
        Ok(target) if target.components().count() == 1 => Some(lib.to_path_buf()),
        Ok(_) => std::fs::canonicalize(lib).ok(),
        Err(_) => std::fs::metadata(lib)
            .is_ok_and(|m| m.is_file())
            .then_some(lib.to_path_buf()),
    }
}

/// `/etc/resolv.conf` naming `servers`.
fn resolv_conf(servers: &[std::net::IpAddr]) -> String {
    servers
        .iter()
        .map(|ip| format!("nameserver {ip}\n"))
        .collect()
}

/// The mount points of `mountinfo` (`/proc/self/mountinfo`'s text) that
/// `mount hostfs = yes` binds: all but `/` and those under `/proc`,
/// `/sys`, `/dev`, `/run`, `/boot` and `/var`, as Apptainer chooses them,
/// parents first, each once.
fn host_file_systems(mountinfo: &str) -> Vec<PathBuf> {
    const SKIPPED: &[&str] = &["/proc", "/sys", "/dev", "/run", "/boot", "/var"];
    let mut out: Vec<PathBuf> = Vec::new();
    for field in mountinfo.lines().filter_map(|l| l.split(' ').nth(4)) {
        let p = PathBuf::from(unescape_mountinfo(field));
        if p == Path::new("/") || SKIPPED.iter().any(|s| p.starts_with(s)) || out.contains(&p) {
            continue;
        }
        out.push(p);
    }
    out
}

/// A mountinfo path: the kernel writes space, tab, newline and backslash
/// as three octal digits after a backslash.
fn unescape_mountinfo(field: &str) -> String {
    let mut out = String::new();
    let mut rest = field;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A private, initially empty directory at `dst`: `workdir/sub` on the host
/// with `--workdir` (kept after the run), else a directory of the session.
fn private_dir(
    workdir: Option<&Path>,
    sub: &Path,
    session_name: &str,
    dst: &Path,
) -> Result<Mount, PlanError> {
    match workdir {
        Some(w) => {
            let dir = w.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| PlanError::BindSource {
                path: dir.clone(),
                problem: format!("cannot be created: {e}"),
            })?;
            Ok(Mount::Bind {
                src: dir,
                dst: dst.to_path_buf(),
                readonly: false,
                recursive: false,
            })
        }
        None => Ok(Mount::SessionDir {
            name: session_name.into(),
            dst: dst.to_path_buf(),
        }),
    }
}

/// A bind source must exist and be readable by the user: binding what one
/// cannot read would only give a container that fails later, less clearly.
fn check_bind_source(src: &Path) -> Result<(), PlanError> {
    let problem = |e: std::io::Error| {
        let problem = match e.kind() {
            std::io::ErrorKind::NotFound => "doesn't exist".to_string(),
            std::io::ErrorKind::PermissionDenied => {
                "is not readable by you (permission denied)".to_string()
            }
            _ => e.to_string(),
        };
        PlanError::BindSource {
            path: src.to_path_buf(),
            problem,
        }
    };
    let meta = std::fs::metadata(src).map_err(problem)?;
    if meta.is_dir() {
        std::fs::read_dir(src).map(drop).map_err(problem)
    } else if meta.is_file() {
        std::fs::File::open(src).map(drop).map_err(problem)
    } else {
        Ok(())
    }
}

fn bind(src: &str, dst: &str, readonly: bool, recursive: bool) -> Mount {
    Mount::Bind {
        src: src.into(),
        dst: dst.into(),
        readonly,
        recursive,
    }
}

/// The `/dev` of a contained container: a tmpfs with the harmless devices
/// of the host, a private `devpts` (unless the site says `mount devpts =
/// no`) and `shm`.
fn minimal_dev(mounts: &mut Vec<Mount>, devpts: bool) {
    mounts.push(Mount::Tmpfs {
        dst: "/dev".into(),
        size_mib: Some(1),
        mode: 0o755,
    });
    for d in ["null", "zero", "full", "random", "urandom", "tty"] {
        let p = format!("/dev/{d}");
        if Path::new(&p).exists() {
            mounts.push(bind(&p, &p, false, false));
        }
    }
    if devpts {
        mounts.push(Mount::Devpts {
            dst: "/dev/pts".into(),
        });
        mounts.push(Mount::Symlink {
            target: "pts/ptmx".into(),
            at: "/dev/ptmx".into(),
        });
    }
    mounts.push(Mount::Tmpfs {
        dst: "/dev/shm".into(),
        size_mib: None,
        mode: 0o1777,
    });
    for (target, at) in [
        ("/proc/self/fd", "/dev/fd"),
        ("/proc/self/fd/0", "/dev/stdin"),
        ("/proc/self/fd/1", "/dev/stdout"),
        ("/proc/self/fd/2", "/dev/stderr"),
    ] {
        mounts.push(Mount::Symlink {
            target: target.into(),
            at: at.into(),
        });
    }
}

/// The image's environment scripts in the order Apptainer sources them:
/// byte order of their names, then those of the SCIF app, if one is asked
/// for (which must exist).
fn env_scripts(root: &RootDir, app: Option<&str>) -> Result<Vec<String>, PlanError> {
    let names = root.list_dir("/.singularity.d/env")?;
    let mut scripts: Vec<String> = names
        .into_iter()
        .filter(|n| n.ends_with(".sh"))
        .map(|n| format!("/.singularity.d/env/{n}"))
        .collect();
    if let Some(app) = app.filter(|a| !a.is_empty()) {
        let meta = format!("/scif/apps/{app}/scif");
        if app.contains('/') || !root.is_dir(&meta)? {
            return Err(PlanError::Invalid(format!(
                "the image has no SCIF app named {app:?} (`inspect --list-apps IMAGE` lists them)"
            )));
        }
        let env_dir = format!("{meta}/env");
        if root.is_dir(&env_dir)? {
            scripts.extend(
                root.list_dir(&env_dir)?
                    .into_iter()
                    .filter(|n| n.ends_with(".sh"))
                    .map(|n| format!("{env_dir}/{n}")),
            );
        }
    }
    Ok(scripts)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bind::BindSpec;
    use crate::options::OverlaySpec;

    #[test]
    fn a_driver_s_libraries_are_links_into_one_bind_per_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("libx.so.550"), b"x").unwrap();
        std::os::unix::fs::symlink("libx.so.550", a.join("libx.so.1")).unwrap();
        std::fs::write(a.join("liby.so.1"), b"y").unwrap();
        // A link into another directory is followed to the real file.
        std::os::unix::fs::symlink(a.join("liby.so.1"), b.join("libz.so.1")).unwrap();
        let libs: Vec<(PathBuf, std::ffi::OsString)> = [
            (a.join("libx.so.1"), "libx.so.1"),
            (a.join("liby.so.1"), "liby.so.1"),
            (b.join("libz.so.1"), "libz.so.1"),
            (a.join("gone.so.1"), "gone.so.1"),
            (a.join("liby.so.1"), "liby.so.1"),
        ]
        .into_iter()
        .map(|(p, n)| (p, n.into()))
        .collect();
        let (mut dirs, mut mounts) = (Vec::new(), Vec::new());
        assert!(link_libraries(
            Path::new(LIBS_DIR),
            &libs,
            &mut dirs,
            &mut mounts
        ));
        assert_eq!(dirs, std::slice::from_ref(&a));
        let x = format!("{HOST_LIBS_DIR}/0/libx.so.1");
        let y = format!("{HOST_LIBS_DIR}/0/liby.so.1");
        assert_eq!(
            mounts,
            [
                Mount::Bind {
                    src: a,
                    dst: format!("{HOST_LIBS_DIR}/0").into(),
                    readonly: true,
                    recursive: false
                },
                Mount::Symlinks {
                    dir: LIBS_DIR.into(),
                    links: vec![
                        (x, "libx.so.1".into()),
                        (y.clone(), "liby.so.1".into()),
                        (y, "libz.so.1".into())
                    ]
                }
            ]
        );
        assert!(!link_libraries(
            Path::new(LIBS_DIR),
            &[],
            &mut dirs,
            &mut mounts
        ));
    }

    fn host() -> Host {
        Host::for_tests()
    }

    fn image() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("bin/sh"), "").unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        std::fs::write(dir.path().join("etc/passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        dir
    }

    fn opts(action: Action) -> LaunchOptions {
        LaunchOptions {
            action: Some(action),
            product: "Apptainer".into(),
            ..LaunchOptions::default()
        }
    }

    fn dsts(plan: &LaunchPlan) -> Vec<String> {
        plan.mounts
            .iter()
            .map(|m| match m {
                Mount::Bind { dst, .. }
                | Mount::Tmpfs { dst, .. }
                | Mount::SessionDir { dst, .. }
                | Mount::SessionFile { dst, .. }
                | Mount::Devpts { dst } => dst.display().to_string(),
                Mount::Symlink { at, .. } => at.display().to_string(),
                Mount::Symlinks { dir, .. } => dir.display().to_string(),
            })
            .collect()
    }

    #[test]
    fn the_session_plan_decides_namespaces_and_size() {
        let mut o = opts(Action::Exec(vec!["true".into()]));
        let mut root = host();
        root.uid = 0;
        assert!(!session(&o, &root, false).unwrap().namespaces.user);
        o.hostname = Some("h".into());
        o.net = true;
        o.writable_tmpfs = true;
        o.tmpfs_size_mib = 64;
        let s = session(&o, &host(), false).unwrap();
        assert!(s.namespaces.uts && s.namespaces.net && s.loopback);
        assert_eq!(s.hostname.as_deref(), Some("h"));
        assert_eq!(s.root_mode, RootMode::WritableTmpfs);
        assert_eq!(s.session_mib, SESSION_BASE_MIB + 64);
        // With a writable overlay directory, the tmpfs holds no writes.
        o.overlays = vec![crate::options::OverlaySpec {
            path: "/ov".into(),
            readonly: false,
        }];
        let s = session(&o, &host(), false).unwrap();
        assert_eq!(s.session_mib, SESSION_BASE_MIB);
        assert_eq!(
            s.root_mode,
            RootMode::Overlay {
                upper: "/ov".into()
            }
        );
    }

    #[test]
    fn default_plan() {
        let img = image();
        let plan = build(
            &opts(Action::Exec(vec!["true".into()])),
            &host(),
            img.path(),
            Path::new("/i.sif"),
            false,
        )
        .unwrap();
        let d = dsts(&plan);
        for want in [
            "/proc",
            "/sys",
            "/dev",
            "/tmp",
            "/var/tmp",
            "/home/u",
            "/data/project",
            "/etc/passwd",
            "/etc/group",
        ] {
            assert!(d.contains(&want.to_string()), "{want} missing: {d:?}");
        }
        assert_eq!(plan.root_mode, RootMode::ReadOnly);
        assert_eq!(plan.cwd, Path::new("/data/project"));
        let o = opts(Action::Exec(vec!["true".into()]));
        let ns = session(&o, &host(), false).unwrap().namespaces;
        assert!(ns.user && ns.mount && !ns.pid);
        assert_eq!(plan.argv[0], "/bin/sh");
        let passwd = plan.mounts.iter().find_map(|m| match m {
            Mount::SessionFile { name, content, .. } if name == "passwd" => Some(content.clone()),
            _ => None,
        });
        assert!(passwd.unwrap().contains("user1000:x:1000:1000::/home/u:"));
    }

    #[test]
    fn hostfs_takes_the_host_mount_points_apptainer_does() {
        let mountinfo = "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n\
            23 22 0:5 / /proc rw - proc proc rw\n\
            24 22 0:6 / /scratch rw - lustre x rw\n\
            25 24 0:7 / /scratch/my\\040dir rw - tmpfs t rw\n\
            26 22 0:8 / /var/lib/docker rw - xfs y rw\n\
            27 22 0:9 / /variable rw - xfs y rw\n\
            28 22 0:6 / /scratch rw - lustre x rw\n";
        assert_eq!(
            host_file_systems(mountinfo),
            [
                PathBuf::from("/scratch"),
                "/scratch/my dir".into(),
                "/variable".into()
            ]
        );
    }

    #[test]
    fn the_sites_default_mounts() {
        let img = image();
        let plan_under = |text: &str, contain: bool| {
            let conf = vessel_config::conf::Conf::parse(text, Path::new("site.conf")).unwrap();
            let mut o = opts(Action::Exec(vec!["true".into()]));
            o.site = crate::options::Site::from_conf(&conf);
            o.contain = contain;
            build(&o, &host(), img.path(), Path::new("/i.sif"), false).unwrap()
        };
        let plan = plan_under(
            "mount proc = no\nmount sys = no\nmount home = no\nmount tmp = no\n\
             config passwd = no\nconfig group = no\nuser bind control = no",
            false,
        );
        let d = dsts(&plan);
        for gone in [
            "/proc",
            "/sys",
            "/home/u",
            "/tmp",
            "/var/tmp",
            "/etc/passwd",
            "/etc/group",
            "/data/project",
        ] {
            assert!(!d.contains(&gone.to_string()), "{gone} in {d:?}");
        }
        assert!(d.contains(&"/dev".to_string()));
        // mount dev = minimal stages a /dev, without devpts if told.
        let d = dsts(&plan_under("mount dev = minimal\nmount devpts = no", false));
        assert!(d.contains(&"/dev/null".to_string()) && !d.contains(&"/dev/pts".to_string()));
        assert!(!dsts(&plan_under("mount dev = no", false))
            .iter()
            .any(|p| p.starts_with("/dev")));
        // bind path: bound (rw unless :ro); a missing source is a warning;
        // --contain keeps only the defaults.
        let plan = plan_under(
            "bind path = /etc:/site/etc:ro\nbind path = /nonexistent-x",
            false,
        );
        assert!(plan.mounts.contains(&Mount::Bind {
            src: "/etc".into(),
            dst: "/site/etc".into(),
            readonly: true,
            recursive: true
        }));
        assert!(!dsts(&plan).contains(&"/etc/hosts".to_string()));
        assert!(
            plan.warnings
                .iter()
                .any(|w| w.contains("bind path = /nonexistent-x (in site.conf)")),
            "{:?}",
            plan.warnings
        );
        let plan = plan_under("bind path = /etc:/site/etc\nbind path = /etc/hosts", true);
        let d = dsts(&plan);
        assert!(!d.contains(&"/site/etc".to_string()) && d.contains(&"/etc/hosts".to_string()));
    }

    #[test]
    fn a_shared_container_has_a_dev_shm_of_its_own() {
        let img = image();
        let shm = Mount::Tmpfs {
            dst: "/dev/shm".into(),
            size_mib: None,
            mode: 0o1777,
        };
        let mut o = opts(Action::Exec(vec!["true".into()]));
        let plan = build(&o, &host(), img.path(), Path::new("/i.sif"), false).unwrap();
        assert!(
            !plan.mounts.contains(&shm),
            "the host's /dev/shm by default"
        );
        o.sharens = true;
        let plan = build(&o, &host(), img.path(), Path::new("/i.sif"), false).unwrap();
        let at = |m: &Mount| plan.mounts.iter().position(|x| x == m);
        assert!(
            at(&shm) > at(&bind("/dev", "/dev", false, true)),
            "{plan:?}"
        );
    }

    #[test]
    fn contain_replaces_host_directories() {
        let img = image();
        let mut o = opts(Action::Exec(vec!["true".into()]));
        o.contain = true;
        let plan = build(&o, &host(), img.path(), Path::new("/i.sif"), false).unwrap();
        assert!(plan.mounts.contains(&Mount::SessionDir {
            name: "home".into(),
            dst: "/home/u".into()
        }));
        assert!(plan.mounts.contains(&Mount::SessionDir {
            name: "tmp".into(),
            dst: "/tmp".into()
        }));
        assert!(plan.mounts.contains(&Mount::Devpts {
            dst: "/dev/pts".into()
        }));
        assert!(
            !dsts(&plan).contains(&"/data/project".to_string()),
            "no cwd under --contain"
        );
        assert_eq!(plan.cwd, Path::new("/home/u"));
    }

    #[test]
    fn user_binds_come_after_the_defaults() {
        let img = image();
        let src = tempfile::tempdir().unwrap();
        let mut o = opts(Action::Run(vec![]));
        o.binds = vec![BindSpec {
            src: src.path().into(),
            dst: "/home/u/data".into(),
            readonly: true,
        }];
        let plan = build(&o, &host(), img.path(), Path::new("/i.sif"), false).unwrap();
        let d = dsts(&plan);
        let home = d.iter().position(|x| x == "/home/u").unwrap();
        let data = d.iter().position(|x| x == "/home/u/data").unwrap();
        assert!(home < data);
        o.binds[0].src = "/nonexistent/source".into();
        let err = build(&o, &host(), img.path(), Path::new("/i.sif"), false).unwrap_err();
        assert!(
            err.to_string()
                .contains("/nonexistent/source doesn't exist"),
            "{err}"
        );
    }

    #[test]
    fn writable_needs_a_sandbox_and_excludes_overlays() {
        let img = image();
        let mut o = opts(Action::Shell(None));
        o.writable = true;
        assert!(build(&o, &host(), img.path(), Path::new("/i.sif"), false).is_err());
        assert_eq!(
            build(&o, &host(), img.path(), Path::new("/dir"), true)
                .unwrap()
                .root_mode,
            RootMode::Writable
        );
        o.overlays = vec![OverlaySpec {
            path: "/ov".into(),
            readonly: false,
        }];
        assert!(build(&o, &host(), img.path(), Path::new("/dir"), true).is_err());
        o.writable = false;
        assert_eq!(
            build(&o, &host(), img.path(), Path::new("/dir"), true)
                .unwrap()
                .root_mode,
            RootMode::Overlay {
                upper: "/ov".into()
            }
        );
    }

    #[test]
    fn dns_replaces_the_hosts_resolv_conf_with_a_read_only_file() {
        let img = image();
        let mut o = opts(Action::Exec(vec!["true".into()]));
        o.dns = vec!["10.0.0.2".parse().unwrap(), "fd00::1".parse().unwrap()];
        o.no_mount = vec!["/etc/resolv.conf".into()];
        let plan = build(&o, &host(), img.path(), Path::new("/i.sif"), false).unwrap();
        let resolv: Vec<&Mount> = plan
            .mounts
            .iter()
            .filter(|m| matches!(m, Mount::Bind { dst, .. } | Mount::SessionFile { dst, .. } if dst == Path::new("/etc/resolv.conf")))
            .collect();
        assert_eq!(
            resolv,
            [&Mount::SessionFile {
                name: "resolv.conf".into(),
                content: "nameserver 10.0.0.2\nnameserver fd00::1\n".into(),
                dst: "/etc/resolv.conf".into(),
                readonly: true,
            }]
        );
    }

    #[test]
    fn host_libraries_are_bound_read_only_into_the_libs_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            dir.path().join("liba.so.1"),
            dir.path().join("sub/liba.so.1"),
        );
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(&a, "").unwrap();
        std::fs::write(&b, "").unwrap();
        let mut mounts = Vec::new();
        assert!(!host_libraries("--nv", &[], &mut mounts).unwrap());
        assert!(mounts.is_empty());
        // The first of one name wins, as on a library path.
        assert!(host_libraries("--nv", &[a.clone(), b], &mut mounts).unwrap());
        assert_eq!(
            mounts,
            [Mount::Bind {
                src: a.clone(),
                dst: "/.singularity.d/libs/liba.so.1".into(),
                readonly: true,
                recursive: false,
            }]
        );
        let err = |libs: &[PathBuf]| {
            host_libraries("--containlibs", libs, &mut Vec::new())
                .unwrap_err()
                .to_string()
        };
        let missing = dir.path().join("libnope.so");
        assert_eq!(
            err(std::slice::from_ref(&missing)),
            format!("--containlibs {}: doesn't exist", missing.display())
        );
        assert!(err(&[dir.path().to_path_buf()]).ends_with("not a file (give library files)"));
        // Through the plan, with the directory on LD_LIBRARY_PATH.
        let img = image();
        let mut o = opts(Action::Exec(vec!["true".into()]));
        o.containlibs = vec![a];
        let plan = build(&o, &host(), img.path(), Path::new("/i.sif"), false).unwrap();
        assert!(dsts(&plan).contains(&"/.singularity.d/libs/liba.so.1".to_string()));
        assert!(plan.argv[2]
            .to_string_lossy()
            .contains("__vessel_lib='/.singularity.d/libs'; case"));
        let plan = build(
            &opts(Action::Exec(vec!["true".into()])),
            &host(),
            img.path(),
            Path::new("/i.sif"),
            false,
        )
        .unwrap();
        assert!(!plan.argv[2]
            .to_string_lossy()
            .contains("/.singularity.d/libs"));
    }

    #[test]
    fn privileges_in_the_plan() {
        let img = image();
        let build_with =
            |o: &LaunchOptions| build(o, &host(), img.path(), Path::new("/i.sif"), false).unwrap();
        // An unprivileged user: no_new_privs, capabilities untouched.
        let plan = build_with(&opts(Action::Exec(vec!["true".into()])));
        assert!(plan.no_new_privs && plan.capabilities.is_none() && !plan.allow_setuid);
        let mut o = opts(Action::Exec(vec!["true".into()]));
        o.root_privileges = Some(crate::options::RootPrivileges {
            keep: vec![Capability::CAP_CHOWN],
            no_new_privs: false,
        });
        o.allow_setuid = true;
        let plan = build_with(&o);
        assert!(!plan.no_new_privs && plan.allow_setuid);
        assert_eq!(plan.capabilities, Some(vec![Capability::CAP_CHOWN]));
    }

    #[test]
    fn ignore_subuid_reaches_the_session_plan() {
        let mut o = opts(Action::Exec(vec!["true".into()]));
        assert!(!session(&o, &host(), false).unwrap().ignore_subuid);
        o.ignore_subuid = true;
        assert!(session(&o, &host(), false).unwrap().ignore_subuid);
    }

    #[test]
    fn images_without_a_shell() {
        let img = tempfile::tempdir().unwrap();
        let plan = build(
            &opts(Action::Exec(vec!["/app".into()])),
            &host(),
            img.path(),
            Path::new("/i.sif"),
            false,
        )
        .unwrap();
        assert_eq!(plan.argv, vec![std::ffi::OsString::from("/app")]);
        assert!(build(
            &opts(Action::Run(vec![])),
            &host(),
            img.path(),
            Path::new("/i.sif"),
            false
        )
        .is_err());
    }
}
