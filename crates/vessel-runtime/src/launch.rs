//! Carrying out a launch plan, as one straight sequence: the session plan,
//! the namespaces and session tmpfs, the image's root file system, the
//! root plan, the root assembled, then the payload forked and watched.
//!
//! Each process of the launch has its file:
//! - [`source`]: where the image's root file system comes from (the image
//!   drivers: a directory, the extract cache, the kernel, FUSE);
//! - [`root`]: the container's `/` assembled under the session, through
//!   the [`vessel_sys::syscall::Syscall`] seam ([`kernel`] is its real
//!   side, which narrates each mount under `--debug`);
//! - [`payload`]: the forked child that pivots into the root, sets
//!   `no_new_privs` and execs (or becomes PID 1 and starts it);
//! - [`monitor`]: the parent, which makes the namespaces, then relays
//!   signals, reaps, and returns the payload's status.

mod kernel;
pub(crate) mod monitor;
pub(crate) mod payload;
mod root;
mod source;

use std::fs;
use std::path::{Path, PathBuf};

use vessel_image::Image;
use vessel_sys::mount as m;
use vessel_sys::ns::Namespaces;
use vessel_sys::process::{self as p, Fork};
use vessel_sys::signal::SignalMask;
use vessel_sys::{Errno, Hint, SysError};

use crate::options::{Host, LaunchOptions};
use crate::plan::{self, LaunchPlan, PlanError};
use kernel::Kernel;
use source::RootSource;

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("could not open image {0}")]
    Open(#[from] vessel_image::OpenError),
    /// The image's root file system could not be found in it.
    #[error(transparent)]
    RootFs(vessel_image::OpenError),
    #[error("{0}: no image file")]
    NoImageFile(PathBuf),
    #[error("{path}: the image is built for {image}, but this machine is {host}")]
    WrongArch {
        path: PathBuf,
        image: vessel_sif::Arch,
        host: vessel_sif::Arch,
        #[source]
        hint: Hint,
    },
    #[error("{image}: {problem}")]
    FuseImage { image: PathBuf, problem: String },
    #[error(transparent)]
    Fuse(crate::fuse::ServeError),
    #[error("cannot create a session directory in {dir}: {source}")]
    SessionDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("overlay directory {dir}: {source}")]
    OverlayDir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the path {0} contains ',' or ':', which overlay mounts cannot take: move it")]
    OverlayPath(String),
    #[error("could not bind {src} to {dst} in the container: {source}")]
    Bind {
        src: PathBuf,
        dst: PathBuf,
        #[source]
        source: Box<LaunchError>,
    },
    #[error("cannot create the mount point {dst} in the image ({source}); the image may belong to another user: create the directory in the image, or use --no-mount or --no-home")]
    MountPoint {
        dst: PathBuf,
        #[source]
        source: SysError,
    },
    #[error(transparent)]
    Extract(#[from] crate::extract::ExtractError),
    #[error(transparent)]
    Overlay(#[from] crate::overlay_layers::OverlayError),
    #[error("could not mount the container's overlay with fuse-overlayfs: {problem}")]
    FuseOverlayfs {
        problem: String,
        #[source]
        hint: Hint,
    },
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{image}: {refusal}")]
    Site {
        image: PathBuf,
        refusal: crate::options::SiteRefusal,
    },
    #[error("{what} ({why})")]
    Kernel {
        what: String,
        why: String,
        /// The advice, with the kernel's refusal as its cause.
        #[source]
        hint: Hint,
    },
    #[error("--nvccli: {problem}")]
    Nvccli { problem: String },
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Runs the container and returns the payload's exit status (128 + N when
/// a signal ended it).
pub fn launch(opts: &LaunchOptions, host: &Host) -> Result<i32, LaunchError> {
    launch_image(opts, host, vessel_image::open_image(&opts.image)?)
}

/// [`launch`] of an image already opened (and perhaps checked, as
/// execution control does): the container runs from that very file.
pub fn launch_image(opts: &LaunchOptions, host: &Host, image: Image) -> Result<i32, LaunchError> {
    launch_with(opts, host, image, None)
}

/// What an instance's monitor learns once the container's init runs.
pub struct Started<'a> {
    pub init: p::Pid,
    pub plan: &'a LaunchPlan,
    pub namespaces: Namespaces,
}

/// Told by an instance's monitor that its init runs.
pub type OnStart<'a> = dyn FnMut(&Started<'_>) -> Result<(), LaunchError> + 'a;

/// [`launch_image`] for an instance: the payload becomes the instance's
/// init ([`crate::instance::init`]), and `on_start` is told its pid.
pub fn launch_instance(
    opts: &LaunchOptions,
    host: &Host,
    image: Image,
    on_start: &mut OnStart<'_>,
) -> Result<i32, LaunchError> {
    launch_with(opts, host, image, Some(on_start))
}

fn launch_with(
    opts: &LaunchOptions,
    host: &Host,
    image: Image,
    instance: Option<&mut OnStart<'_>>,
) -> Result<i32, LaunchError> {
    site_allows(opts, host, &image)?;
    let mut overlays = crate::overlay_layers::check(&opts.overlays, host.uid)?;
    // A SIF's own overlay partition: written with --writable (in place of
    // a writable image), a read-only layer below the others otherwise, as
    // Apptainer uses it.
    if let Some(partition) = crate::overlay_layers::sif_partition(&image, opts.writable)? {
        overlays.extend(partition);
    }
    // The overlays as checked: a SquashFS is read-only, the partition one
    // more.
    let checked_specs = overlays.specs();
    let as_checked;
    let opts = if checked_specs != opts.overlays {
        let partition_added = checked_specs.len() > opts.overlays.len();
        as_checked = LaunchOptions {
            writable: opts.writable && !partition_added,
            overlays: checked_specs,
            ..opts.clone()
        };
        &as_checked
    } else {
        opts
    };
    let session_plan = plan::session(opts, host, matches!(image, Image::Sandbox { .. }))?;
    tracing::debug!("session plan: {session_plan:?}");
    let source = source::root_source(image, opts, host)?;
    // The first child forked in a new PID namespace becomes its PID 1: that
    // must be the payload, not the FUSE server, which is forked first.
    let fuse = matches!(source, RootSource::Fuse { .. });
    let session = monitor::enter_namespaces(&session_plan, host, fuse)?;
    let (lower, fuse_server) = source.mount(session.path(), opts, host)?;
    let checked;
    let opts = if overlays.is_empty() {
        opts
    } else {
        let owner = if opts.fakeroot {
            (0, 0)
        } else {
            (host.uid, host.gid)
        };
        checked = LaunchOptions {
            overlays: overlays.mount(session.path(), owner, host.uid == 0)?,
            ..opts.clone()
        };
        &checked
    };
    if fuse && session_plan.namespaces.pid {
        vessel_sys::ns::unshare(Namespaces {
            pid: true,
            ..Namespaces::default()
        })?;
    }
    let mut plan = plan::build_root(opts, host, &session_plan, &lower, &opts.image)?;
    if overlays.needs_fuse_overlayfs() {
        plan.layering = plan::Layering::FuseOverlayfs;
    }
    tracing::debug!("root plan: {plan:?}");
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    // An instance's processes may be joined from outside (`exec
    // instance://`): only the sweeper's walk finds those.
    let alone = instance.is_none();
    let instance = instance.map(|f| (f, session_plan.namespaces));
    let status = run(&plan, session.path(), instance);
    // The layers' helpers write their file systems back before the image
    // they are stacked on goes.
    overlays.release();
    drop(fuse_server);
    if alone {
        session.nothing_left();
    }
    // The session's mounts vanish with the namespace; remove the empty
    // directory they were on.
    let _ = m::unmount_detach(session.path());
    drop(session);
    drop(source);
    drop(overlays);
    status
}

/// Whether the site's configuration lets this image run: for users other
/// than root (as in Apptainer), its kind (`allow container
/// sif|squashfs|dir`), its owner, group and place (`limit container owners|groups|paths`,
/// whose paths match whole components: `/data` does not admit
/// `/data2/x.sif`, as Apptainer 1.5.1 fixed).
fn site_allows(opts: &LaunchOptions, host: &Host, image: &Image) -> Result<(), LaunchError> {
    let site = &opts.site;
    let path = image.path().to_path_buf();
    let refuse = |what: &str, directive: String| LaunchError::Site {
        image: path.clone(),
        refusal: site.refuse(None, what, &directive),
    };
    let (allowed, what, key) = match image {
        Image::Sif { .. } => (site.allow_sif, "SIF images", "sif"),
        Image::Squashfs { .. } => (site.allow_squashfs, "SquashFS images", "squashfs"),
        Image::Sandbox { .. } => (site.allow_dir, "sandbox directories", "dir"),
    };
    if host.uid == 0 {
        return Ok(());
    }
    if !allowed {
        return Err(refuse(what, format!("allow container {key} = no")));
    }
    if site.owners.is_empty() && site.groups.is_empty() && site.paths.is_empty() {
        return Ok(());
    }
    // The file opened (a SIF or SquashFS), else the directory, with its
    // symbolic links resolved.
    let (meta, real) = match image {
        Image::Sif { sif, .. } => (
            sif.get_ref().metadata()?,
            fs::read_link(vessel_sys::path::fd_path(sif.get_ref()))?,
        ),
        Image::Squashfs { file, .. } => (
            file.metadata()?,
            fs::read_link(vessel_sys::path::fd_path(file))?,
        ),
        Image::Sandbox { path } => (fs::metadata(path)?, fs::canonicalize(path)?),
    };
    use std::os::unix::fs::MetadataExt;
    if !site.owners.is_empty() {
        let owner = vessel_sys::user::passwd_by_uid(meta.uid()).map(|u| u.name);
        if !owner.as_ref().is_some_and(|o| site.owners.contains(o)) {
            let who = owner.unwrap_or_else(|| format!("uid {}", meta.uid()));
            let what = format!("images owned by {who}");
            let list = site.owners.join(", ");
            return Err(refuse(&what, format!("limit container owners = {list}")));
        }
    }
    if !site.groups.is_empty() {
        let group = vessel_sys::user::group_by_gid(meta.gid()).map(|g| g.name);
        if !group.as_ref().is_some_and(|g| site.groups.contains(g)) {
            let which = group.unwrap_or_else(|| format!("gid {}", meta.gid()));
            let what = format!("images of the group {which}");
            let list = site.groups.join(", ");
            return Err(refuse(&what, format!("limit container groups = {list}")));
        }
    }
    // `Path::starts_with` compares whole components.
    if !site.paths.is_empty() && !site.paths.iter().any(|p| real.starts_with(p)) {
        let what = format!("images in {}", real.parent().unwrap_or(&real).display());
        let list: Vec<String> = site.paths.iter().map(|p| p.display().to_string()).collect();
        let directive = format!("limit container paths = {}", list.join(", "));
        return Err(refuse(&what, directive));
    }
    Ok(())
}

/// Assembles the root, forks the payload, and watches it to its end.
fn run(
    plan: &LaunchPlan,
    session: &Path,
    instance: Option<(&mut OnStart<'_>, Namespaces)>,
) -> Result<i32, LaunchError> {
    let mut helpers = Vec::new();
    let mut fuse_overlay = |options: &str, target: &Path| {
        let helper = crate::fuse_helper::fuse_overlayfs(options, target, session).map_err(|e| {
            LaunchError::FuseOverlayfs {
                problem: e.problem,
                hint: Hint::new(
                    e.hint
                        .unwrap_or("run with --debug to see the layers, or use --unsquash"),
                ),
            }
        })?;
        helpers.push(helper);
        Ok(())
    };
    let root = root::assemble_root(&Kernel, plan, session, &mut fuse_overlay);
    let status = root.and_then(|root| start_payload(plan, &root, instance));
    for h in helpers.drain(..).rev() {
        h.stop();
    }
    status
}

/// Runs `nvidia-container-cli` if asked, forks the payload in `root`, and
/// watches it to its end.
fn start_payload(
    plan: &LaunchPlan,
    root: &Path,
    instance: Option<(&mut OnStart<'_>, Namespaces)>,
) -> Result<i32, LaunchError> {
    let root = root.to_path_buf();
    if let Some(call) = &plan.nvccli {
        nvidia_container_cli(call, &root)?;
    }
    let mask = SignalMask::block_forwarded()?;
    // An instance's init watches its monitor through this pidfd, and says
    // on the pipe when it is in the container.
    let me = match &instance {
        Some(_) => Some((vessel_sys::join::Process::this_inherited()?, p::pipe()?)),
        None => None,
    };
    let child = match p::fork()? {
        Fork::Child => match &me {
            Some((me, (_, ready))) => crate::instance::init::exec_init(plan, &root, me, ready),
            None => payload::payload(plan, &root, &mask),
        },
        Fork::Parent(pid) => pid,
    };
    if let Some((_, (mut ready, writer))) = me {
        drop(writer);
        // A byte once the init is in, nothing (the pipe's end) if it failed
        // first: a command that joins it then finds it gone.
        let _ = std::io::Read::read(&mut ready, &mut [0u8; 1]);
    }
    if let Some((on_start, namespaces)) = instance {
        let started = Started {
            init: child,
            plan,
            namespaces,
        };
        if let Err(e) = on_start(&started) {
            let _ = p::kill(child, vessel_sys::signal::SIGKILL);
            let _ = p::wait_for(child);
            return Err(e);
        }
    }
    monitor::relay(child, &mask)
}

/// Runs `nvidia-container-cli` on the assembled root, in the container's
/// namespaces (this process's), before the payload exists.
fn nvidia_container_cli(call: &crate::gpu::nvccli::Call, root: &Path) -> Result<(), LaunchError> {
    tracing::debug!(
        "nvidia-container-cli: {} {} {}",
        call.program.display(),
        call.args.join(" "),
        root.display()
    );
    let out = std::process::Command::new(&call.program)
        .args(&call.args)
        .arg(root)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| LaunchError::Nvccli {
            problem: format!("could not run {}: {source}", call.program.display()),
        })?;
    if out.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&out.stderr);
    Err(LaunchError::Nvccli {
        problem: format!(
            "{} failed ({}): {}",
            call.program.display(),
            out.status,
            said.trim().replace('\n', "; ")
        ),
    })
}

/// A kernel refusal at a step that needs user namespaces or a recent
/// kernel, with the likeliest reason on this machine as its hint.
fn kernel_hint(what: &str, source: SysError) -> LaunchError {
    use crate::userns::Refusal;
    let ask = "ask the administrator to enable them";
    let (why, hint) = match crate::userns::why_refused(source.errno() == Some(Errno::NOSPC)) {
        Refusal::Disabled => (
            "user namespaces are disabled on this machine (user.max_user_namespaces = 0)",
            ask,
        ),
        Refusal::CloneOff => (
            "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)",
            ask,
        ),
        Refusal::AppArmor => (
            "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)",
            "the administrator can allow them for vessel with an AppArmor profile, or set the sysctl to 0",
        ),
        Refusal::LimitReached => (
            "the user namespace limit is reached (ENOSPC)",
            "fewer containers at once, or a higher user.max_user_namespaces (the administrator's)",
        ),
        Refusal::Other => (
            "the kernel refused to create the container's namespaces",
            "containers need unprivileged user namespaces (Linux 4.18 or newer)",
        ),
    };
    LaunchError::Kernel {
        what: what.to_string(),
        why: why.to_string(),
        hint: Hint::with_cause(hint, source),
    }
}
