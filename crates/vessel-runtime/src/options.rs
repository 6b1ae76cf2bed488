//! What the user asked for, validated, and what the host is: the two inputs
//! of a launch plan.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;

use vessel_sys::caps::Capability;
use vessel_sys::user::{GroupEntry, PasswdEntry};

use crate::bind::BindSpec;

/// What to run in the container.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// `exec IMAGE CMD ARGS…`
    Exec(Vec<OsString>),
    /// `run IMAGE ARGS…`: the runscript.
    Run(Vec<OsString>),
    /// `shell IMAGE`, with an optional shell.
    Shell(Option<String>),
    /// `test IMAGE ARGS…`: the test script.
    Test(Vec<OsString>),
}

impl Action {
    /// The verb, as Apptainer names it in `APPTAINER_COMMAND`.
    pub fn verb(&self) -> &'static str {
        match self {
            Action::Exec(_) => "exec",
            Action::Run(_) => "run",
            Action::Shell(_) => "shell",
            Action::Test(_) => "test",
        }
    }
}

/// An `--overlay`: a directory (its `upper` and `work` for a writable
/// one), an ext3 image file (with the same two directories), a SquashFS
/// file, or a SIF with an overlay partition. Only one may be writable; a
/// read-only one is an extra lower layer. At launch every one becomes a
/// directory (see [`crate::overlay_dir`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OverlaySpec {
    pub path: PathBuf,
    pub readonly: bool,
}

/// How the image's root file system is made available.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Driver {
    /// The best available: a sandbox is used as is; a SIF or SquashFS is
    /// mounted by the kernel as real root, served by Vessel's FUSE server
    /// otherwise (extracted when `/dev/fuse` cannot be used).
    #[default]
    Auto,
    /// Vessel's own SquashFS FUSE server, in a process of the container.
    Fuse,
    /// Unpacked once into the node-local cache (`--unsquash`).
    Extract,
}

impl Driver {
    /// `VESSEL_IMAGE_DRIVER` / `--unsquash` spellings.
    pub fn parse(s: &str) -> Option<Driver> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Some(Driver::Auto),
            "fuse" => Some(Driver::Fuse),
            "extract" | "unsquash" => Some(Driver::Extract),
            _ => None,
        }
    }
}

/// Real root's privileges in the container, decided from `--keep-privs`,
/// `--no-privs`, `--add-caps` and `--drop-caps` (Apptainer's `root default
/// capabilities = full` otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RootPrivileges {
    /// The capabilities kept in every set, in kernel order.
    pub keep: Vec<Capability>,
    /// Set `no_new_privs` (with `--no-privs`, as Apptainer does; root with
    /// capabilities runs setuid and file-capability programs as they are).
    pub no_new_privs: bool,
}

/// The GPU options, decided: which drivers to make visible.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GpuOptions {
    /// `--nv` (or `--nvccli`, which implies it).
    pub nv: bool,
    /// `--nvccli` (or the site's `use nvidia-container-cli` with `--nv`):
    /// NVIDIA's `nvidia-container-cli` sets the driver up in the root.
    pub nvccli: bool,
    pub rocm: bool,
    /// With `--nv`/`--rocm`: the 32-bit libraries too, into
    /// `/.singularity.d/libs32`.
    pub compat32: bool,
    /// CDI device names, `vendor/class=name`.
    pub devices: Vec<String>,
    /// Where CDI specs are read from.
    pub cdi_dirs: Vec<PathBuf>,
}

impl GpuOptions {
    pub fn any(&self) -> bool {
        self.nv || self.rocm || !self.devices.is_empty()
    }
}

pub use vessel_config::conf::{DevMode, SiteBind};

/// What the site's configuration (`vessel.conf`, or the `apptainer.conf`
/// read in its place) decides for every container: the default mounts
/// and which images may run. The default is Apptainer's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Site {
    /// The file the settings come from, as messages name it.
    pub file: String,
    pub proc: bool,
    pub sys: bool,
    pub dev: DevMode,
    pub devpts: bool,
    pub home: bool,
    pub tmp: bool,
    /// Bind the working directory (`user bind control`).
    pub cwd: bool,
    pub passwd: bool,
    pub group: bool,
    pub resolv_conf: bool,
    /// `bind path`.
    pub binds: Vec<SiteBind>,
    /// `mount hostfs`: bind the host's file systems.
    pub hostfs: bool,
    /// The session is a ramfs (`memory fs type = ramfs`).
    pub ramfs: bool,
    /// The read-only root is an underlay, not an overlay (`enable overlay
    /// = no`, `enable underlay = preferred`).
    pub underlay: bool,
    /// Overlays go through `fuse-overlayfs` (`enable overlay = driver`).
    pub overlay_driver: bool,
    /// The ranks of a parallel launch share one container per node
    /// (`share namespaces in job steps = yes`).
    pub sharens_in_steps: bool,
    pub allow_sif: bool,
    pub allow_squashfs: bool,
    pub allow_dir: bool,
    /// `limit container owners|groups|paths`: empty lists limit nothing.
    pub owners: Vec<String>,
    pub groups: Vec<String>,
    pub paths: Vec<PathBuf>,
}

impl Site {
    pub fn from_conf(c: &vessel_config::conf::Conf) -> Site {
        Site {
            file: c
                .read_from
                .first()
                .map_or("vessel.conf".into(), |p| p.display().to_string()),
            proc: c.mount_proc,
            sys: c.mount_sys,
            dev: c.mount_dev,
            devpts: c.mount_devpts,
            home: c.mount_home,
            tmp: c.mount_tmp,
            cwd: c.user_bind_control,
            passwd: c.config_passwd,
            group: c.config_group,
            resolv_conf: c.config_resolv_conf,
            binds: c.bind_paths.clone(),
            hostfs: c.mount_hostfs,
            ramfs: c.ramfs,
            underlay: c.overlay_disabled || c.underlay_preferred,
            overlay_driver: c.overlay_driver,
            sharens_in_steps: c.sharens_in_steps,
            allow_sif: c.allow_container_sif,
            allow_squashfs: c.allow_container_squashfs,
            allow_dir: c.allow_container_dir,
            owners: c.limit_container_owners.clone(),
            groups: c.limit_container_groups.clone(),
            paths: c.limit_container_paths.clone(),
        }
    }
}

impl Site {
    /// The refusal of `what` by `directive`, asked for by `flag`.
    pub fn refuse(&self, flag: Option<&str>, what: &str, directive: &str) -> SiteRefusal {
        SiteRefusal {
            flag: flag.map(String::from),
            file: self.file.clone(),
            what: what.into(),
            directive: directive.into(),
        }
    }
}

impl Default for Site {
    fn default() -> Site {
        Site::from_conf(&vessel_config::conf::Conf::default())
    }
}

/// Something the site's configuration does not allow: `flag` names what
/// the user asked (when a flag did), `what` the thing refused.
#[derive(Debug, thiserror::Error)]
#[error("{}the site's {file} does not allow {what} ({directive})", flag.as_deref().map(|f| format!("{f}: ")).unwrap_or_default())]
pub struct SiteRefusal {
    pub flag: Option<String>,
    pub file: String,
    pub what: String,
    pub directive: String,
}

/// Everything the user asked for, validated.
#[derive(Clone, Debug, Default)]
pub struct LaunchOptions {
    pub image: PathBuf,
    pub action: Option<Action>,
    pub app: Option<String>,
    pub binds: Vec<BindSpec>,
    pub contain: bool,
    pub no_home: bool,
    /// `--home SRC[:DST]`.
    pub home: Option<(PathBuf, PathBuf)>,
    pub no_mount: Vec<String>,
    pub scratch: Vec<PathBuf>,
    pub workdir: Option<PathBuf>,
    pub cwd: Option<PathBuf>,
    pub writable: bool,
    pub writable_tmpfs: bool,
    /// Size of the tmpfs behind `--writable-tmpfs`, in MiB.
    pub tmpfs_size_mib: u64,
    pub overlays: Vec<OverlaySpec>,
    /// `--underlay`: the read-only root is an underlay, not an overlay.
    pub underlay: bool,
    /// `--sharens`: the containers of one job step on this node with the
    /// same image and options are one ([`crate::instance::sharens`]).
    pub sharens: bool,
    pub pid: bool,
    pub ipc: bool,
    pub uts: bool,
    pub net: bool,
    pub hostname: Option<String>,
    pub cleanenv: bool,
    pub no_env: Vec<String>,
    pub env_files: Vec<(PathBuf, String)>,
    pub env: Vec<(String, String)>,
    pub no_eval: bool,
    /// With a PID namespace, the command itself is PID 1 (no shim init).
    pub no_init: bool,
    /// Umask 0022 in the container instead of the user's.
    pub no_umask: bool,
    /// Appear as root (uid 0) inside, through the user namespace mapping:
    /// privileges over the container's files only, none on the host.
    pub fakeroot: bool,
    /// `--ignore-subuid`: with `fakeroot`, map only root, whatever
    /// `/etc/subuid` gives the user.
    pub ignore_subuid: bool,
    /// `--dns`: the name servers of a generated `/etc/resolv.conf`.
    pub dns: Vec<IpAddr>,
    /// `--containlibs`: host library files bound into
    /// `/.singularity.d/libs`.
    pub containlibs: Vec<PathBuf>,
    /// The GPUs asked for: `--nv`, `--rocm`, CDI `--device`s.
    pub gpus: GpuOptions,
    /// Real root's capabilities; `None` for other users, whose containers
    /// get none on the host (the user namespace's only).
    pub root_privileges: Option<RootPrivileges>,
    /// `--allow-setuid` (root only): the image is mounted without `nosuid`.
    pub allow_setuid: bool,
    pub driver: Driver,
    /// Where extracted images are cached (node-local).
    pub extract_dir: PathBuf,
    /// Where the cache goes when another user holds `extract_dir` (or a
    /// part of its path) in a shared place: `None` refuses instead.
    pub extract_fallback: Option<PathBuf>,
    /// Upper bound of that cache, in bytes.
    pub extract_max_bytes: u64,
    /// The prompt prefix and product name shown inside (`Apptainer`, …).
    pub product: String,
    /// The site's settings for every container.
    pub site: Site,
}

/// Facts about the host and the calling user.
#[derive(Clone, Debug)]
pub struct Host {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    pub user: Option<PasswdEntry>,
    pub group: Option<GroupEntry>,
    pub supplementary: Vec<GroupEntry>,
    pub home: PathBuf,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub tmpdir: PathBuf,
}

impl Host {
    /// Reads the facts of the running process.
    pub fn current() -> Host {
        let uid = vessel_sys::process::getuid();
        let gid = vessel_sys::process::getgid();
        let user = vessel_sys::user::passwd_by_uid(uid);
        let groups = vessel_sys::user::groups();
        let supplementary = groups
            .iter()
            .filter(|&&g| g != gid)
            .filter_map(|&g| vessel_sys::user::group_by_gid(g))
            .collect();
        let home = vessel_config::process_var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| user.as_ref().map(|u| PathBuf::from(&u.home)))
            .unwrap_or_else(|| PathBuf::from("/"));
        Host {
            uid,
            gid,
            groups,
            group: vessel_sys::user::group_by_gid(gid),
            user,
            supplementary,
            home,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/")),
            env: std::env::vars_os().collect(),
            tmpdir: vessel_config::process_var_os("TMPDIR")
                .filter(|t| !t.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/tmp")),
        }
    }

    /// A made-up user 1000 in `/data/project`, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests() -> Host {
        Host {
            uid: 1000,
            gid: 1000,
            groups: vec![1000],
            user: None,
            group: None,
            supplementary: vec![],
            home: "/home/u".into(),
            cwd: "/data/project".into(),
            env: vec![],
            tmpdir: "/tmp".into(),
        }
    }

    pub fn user_name(&self) -> String {
        self.user
            .as_ref()
            .map(|u| u.name.clone())
            .unwrap_or_else(|| format!("user{}", self.uid))
    }
}
