//! Carrying out a launch plan: namespaces, the root file system, the payload
//! process, and the monitor loop that relays signals and returns its status.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use vessel_image::Image;
use vessel_sif::Arch;
use vessel_sys::mount::{self as m, FsFlags};
use vessel_sys::ns::Namespaces;
use vessel_sys::path::{ensure_in_root, fd_path, is_dir, open_dir, open_host, open_in_root};
use vessel_sys::process::{self as p, Exit, Fork};
use vessel_sys::signal::{SignalMask, SIGCHLD};
use vessel_sys::{Errno, SysError};

use crate::extract::{ExtractCache, ExtractError, Extracted};
use crate::fakeroot::Fakeroot;
use crate::options::{Driver, Host, LaunchOptions};
use crate::plan::{self, LaunchPlan, Mount, PlanError, RootMode};

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("could not open image {0}")]
    Open(#[from] vessel_image::OpenError),
    #[error("{0}")]
    Image(String),
    #[error(transparent)]
    Extract(#[from] ExtractError),
    #[error(transparent)]
    Overlay(#[from] crate::overlay_dir::OverlayDirError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{what}: {source} ({hint})")]
    Kernel {
        what: String,
        #[source]
        source: SysError,
        hint: String,
    },
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
    let session_plan = plan::session(opts, host, matches!(image, Image::Sandbox { .. }))?;
    tracing::debug!("session plan: {session_plan:?}");
    let mut overlays = crate::overlay_dir::check(&opts.overlays, host.uid)?;
    let source = root_source(image, opts, host)?;
    // The first child forked in a new PID namespace becomes its PID 1: that
    // must be the payload, not the FUSE server, which is forked first.
    let fuse = matches!(source, RootSource::Fuse { .. });
    let session = enter_namespaces(&session_plan, host, fuse)?;
    let mut fuse_server = None;
    let lower = match &source {
        RootSource::Dir { path } => path.clone(),
        RootSource::Extracted(e) => e.root.clone(),
        RootSource::Kernel { file, offset, size } => {
            mount_squashfs(file, *offset, *size, session.path())?
        }
        RootSource::Fuse { file, offset, size } => {
            let (target, server) = serve_fuse(file, *offset, *size, session.path(), opts, host)?;
            fuse_server = Some(server);
            if session_plan.namespaces.pid {
                vessel_sys::ns::unshare(Namespaces {
                    pid: true,
                    ..Namespaces::default()
                })?;
            }
            target
        }
    };
    let checked;
    let opts = if opts.overlays.is_empty() {
        opts
    } else {
        checked = LaunchOptions {
            overlays: overlays.in_this_namespace()?,
            ..opts.clone()
        };
        &checked
    };
    let plan = plan::build_root(opts, host, &session_plan, &lower, &opts.image)?;
    tracing::debug!("root plan: {plan:?}");
    for w in &plan.warnings {
        tracing::warn!("{w}");
    }
    let status = run(&plan, session.path());
    drop(fuse_server);
    // The session's mounts vanish with the namespace; remove the empty
    // directory they were on.
    let _ = m::unmount_detach(session.path());
    drop(session);
    drop(source);
    drop(overlays);
    status
}

/// Where the image's root file system comes from.
enum RootSource {
    /// A directory: a sandbox, used as is.
    Dir { path: PathBuf },
    /// Unpacked in the node-local cache (unprivileged runs).
    Extracted(Extracted),
    /// Mounted by the kernel from a loop device (runs as real root).
    Kernel {
        file: fs::File,
        offset: u64,
        size: u64,
    },
    /// Served by Vessel's FUSE server, in a child process once mounted.
    Fuse {
        file: fs::File,
        offset: u64,
        size: u64,
    },
}

fn root_source(image: Image, opts: &LaunchOptions, host: &Host) -> Result<RootSource, LaunchError> {
    let root = image
        .squashfs_root()
        .map_err(|e| LaunchError::Image(e.to_string()))?;
    let Some(root) = root else {
        return Ok(RootSource::Dir {
            path: fs::canonicalize(image.path())?,
        });
    };
    let path = image.path().to_path_buf();
    if let Some(arch) = root.arch {
        check_arch(&path, arch)?;
    }
    let (offset, size) = (root.offset, root.size);
    // The image's own descriptor, never its path again: execution control
    // checked this file.
    let file = match image.file() {
        Some(f) => f.try_clone()?,
        None => {
            return Err(LaunchError::Image(format!(
                "{}: no image file",
                path.display()
            )))
        }
    };
    if host.uid == 0 && opts.driver != Driver::Extract {
        return Ok(RootSource::Kernel { file, offset, size });
    }
    if opts.driver == Driver::Fuse || (opts.driver == Driver::Auto && fuse_usable()) {
        return Ok(RootSource::Fuse { file, offset, size });
    }
    let cache = ExtractCache::open(
        &opts.extract_dir,
        opts.extract_fallback.as_deref(),
        opts.extract_max_bytes,
    )?;
    Ok(RootSource::Extracted(
        cache.get(&file, &path, offset, size)?,
    ))
}

/// Whether this user may open `/dev/fuse` (distributions make it 0666;
/// some sites do not): if not, `auto` extracts instead.
fn fuse_usable() -> bool {
    match vessel_sys::fuse::open_device() {
        Ok(_) => true,
        Err(e) => {
            tracing::debug!("not using the FUSE driver: {e}");
            false
        }
    }
}

/// Mounts the image through FUSE at `session/image`, served by a child.
fn serve_fuse(
    file: &fs::File,
    offset: u64,
    size: u64,
    session: &Path,
    opts: &LaunchOptions,
    host: &Host,
) -> Result<(PathBuf, crate::fuse::Server), LaunchError> {
    let target = session.join("image");
    fs::create_dir(&target)?;
    let (uid, gid) = if opts.fakeroot {
        (0, 0)
    } else {
        (host.uid, host.gid)
    };
    let server = crate::fuse::mount_and_serve(file, offset, size, &target, uid, gid).map_err(
        |e| match e {
            crate::fuse::ServeError::Image(msg) => {
                LaunchError::Image(format!("{}: {msg}", opts.image.display()))
            }
            crate::fuse::ServeError::Mount(e) => {
                kernel_hint("could not mount the image with FUSE", e)
            }
            other => LaunchError::Image(other.to_string()),
        },
    )?;
    Ok((target, server))
}

/// Creates the namespaces and the private session tmpfs, returned as the
/// temporary directory it is mounted on.
fn enter_namespaces(
    plan: &plan::SessionPlan,
    host: &Host,
    defer_pid: bool,
) -> Result<tempfile::TempDir, LaunchError> {
    let session = tempfile::Builder::new()
        .prefix("vessel-session-")
        .tempdir_in(&host.tmpdir)
        .map_err(|e| {
            LaunchError::Image(format!(
                "cannot create a session directory in {}: {e}",
                host.tmpdir.display()
            ))
        })?;
    let mut ns = plan.namespaces;
    ns.pid &= !defer_pid;
    if ns.user && plan.fakeroot {
        let mode = Fakeroot::for_user(&host.user_name(), host.uid, host.gid);
        tracing::debug!("{}", mode.describe());
        mode.enter(ns, host.uid, host.gid)
            .map_err(|e| kernel_hint("could not create the fake-root namespace", e))?;
    } else {
        vessel_sys::ns::unshare(ns)
            .map_err(|e| kernel_hint("could not create the container's namespaces", e))?;
        if ns.user {
            vessel_sys::ns::write_id_maps(host.uid, host.gid, host.uid, host.gid)
                .map_err(|e| kernel_hint("could not map your user into the container", e))?;
        }
    }
    // Once the id maps are written: from here on the container's processes
    // (fake root too) cannot open the monitor's or the FUSE server's
    // `/proc/PID/root`, which leads to the host's `/`.
    p::set_not_dumpable()?;
    m::make_private_recursive()?;
    if let Some(h) = &plan.hostname {
        vessel_sys::ns::set_hostname(h)?;
    }
    if plan.loopback {
        if let Err(e) = vessel_sys::ns::loopback_up() {
            tracing::warn!("could not bring up the loopback interface: {e}");
        }
    }
    m::mount_fs(
        "tmpfs",
        session.path(),
        FsFlags {
            nosuid: true,
            nodev: true,
            ..FsFlags::default()
        },
        &format!("size={}m,mode=0700", plan.session_mib),
    )?;
    Ok(session)
}

/// Mounts the SquashFS at `offset` in `file` read-only through a loop
/// device, under the session; returns the mount point.
fn mount_squashfs(
    file: &fs::File,
    offset: u64,
    size: u64,
    session: &Path,
) -> Result<PathBuf, LaunchError> {
    let dev = vessel_sys::loopdev::attach(file, offset, size)?;
    let target = session.join("image");
    fs::create_dir(&target)?;
    m::mount_source(
        &dev.path,
        &target,
        "squashfs",
        FsFlags {
            nosuid: true,
            nodev: true,
            readonly: true,
            ..FsFlags::default()
        },
    )?;
    Ok(target)
}

/// Refuses images for a CPU this machine cannot run (386 runs on amd64).
fn check_arch(path: &Path, arch: Arch) -> Result<(), LaunchError> {
    let host = Arch::host();
    if arch.is_unknown() || arch == host || (arch.go_name() == Some("386") && host == Arch::AMD64) {
        return Ok(());
    }
    Err(LaunchError::Image(format!(
        "{}: the image is built for {arch}, but this machine is {host}: use an image for {host} (pull with --arch {host})",
        path.display()
    )))
}

fn kernel_hint(what: &str, source: SysError) -> LaunchError {
    let errno = source.errno();
    let read = |p: &str| {
        fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let hint = if read("/proc/sys/user/max_user_namespaces") == "0" {
        "user namespaces are disabled on this machine (user.max_user_namespaces = 0): ask the administrator to enable them".to_string()
    } else if read("/proc/sys/kernel/unprivileged_userns_clone") == "0" {
        "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0): ask the administrator to enable them".to_string()
    } else if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1" {
        "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1): the administrator can allow them for vessel with an AppArmor profile, or set the sysctl to 0".to_string()
    } else if errno == Some(Errno::NOSPC) {
        "the user namespace limit is reached (ENOSPC): too many containers, or user.max_user_namespaces is too low".to_string()
    } else {
        "the kernel refused to create the container's namespaces; containers need unprivileged user namespaces (Linux 4.18 or newer)".to_string()
    };
    LaunchError::Kernel {
        what: what.to_string(),
        source,
        hint,
    }
}

fn run(plan: &LaunchPlan, session: &Path) -> Result<i32, LaunchError> {
    let root = assemble_root(plan, session)?;
    let mask = SignalMask::block_forwarded()?;
    let child = match p::fork()? {
        Fork::Child => payload(plan, &root, &mask),
        Fork::Parent(pid) => pid,
    };
    monitor(child, &mask)
}

/// Builds the container's `/` under the session directory.
fn assemble_root(plan: &LaunchPlan, session: &Path) -> Result<PathBuf, LaunchError> {
    let root = session.join("root");
    for d in ["root", "upper", "work", "files", "dirs"] {
        fs::create_dir(session.join(d))?;
    }
    let layers: Vec<PathBuf> = plan
        .read_only_layers
        .iter()
        .chain([&plan.lower])
        .cloned()
        .collect();
    match &plan.root_mode {
        RootMode::Writable => m::bind(&plan.lower, &root, true)?,
        RootMode::ReadOnly | RootMode::WritableTmpfs => overlay(
            &layers,
            &session.join("upper"),
            &session.join("work"),
            &root,
        )?,
        RootMode::Overlay { upper } => {
            let (u, w) = (upper.join("upper"), upper.join("work"));
            fs::create_dir_all(&u)
                .and_then(|()| fs::create_dir_all(&w))
                .map_err(|e| {
                    LaunchError::Image(format!("overlay directory {}: {e}", upper.display()))
                })?;
            overlay(&layers, &u, &w, &root)?
        }
    }
    let root_fd = open_dir(&root)?;
    for mount in &plan.mounts {
        apply(mount, &root_fd, session).map_err(|e| match mount {
            Mount::Bind { src, dst, .. } => LaunchError::Image(format!(
                "could not bind {} to {} in the container: {e}",
                src.display(),
                dst.display()
            )),
            _ => e,
        })?;
    }
    if plan.root_mode == RootMode::ReadOnly {
        m::remount_bind(&root, true)?;
    }
    Ok(root)
}

/// Mounts an overlay of `layers` (topmost first, the image last) with a
/// writable `upper` at `target`.
fn overlay(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), LaunchError> {
    for p in layers.iter().map(PathBuf::as_path).chain([upper, work]) {
        let s = p.to_string_lossy();
        if s.contains(',') || s.contains(':') {
            return Err(LaunchError::Image(format!(
                "the path {s} contains ',' or ':', which overlay mounts cannot take: move it"
            )));
        }
    }
    let lowerdir: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}",
        lowerdir.join(":"),
        upper.display(),
        work.display()
    );
    m::mount_fs("overlay", target, FsFlags { nosuid: true, nodev: true, ..FsFlags::default() }, &options)
        .map_err(|e| kernel_hint("could not mount the container's root file system (overlayfs in a user namespace needs Linux 5.11 or newer)", e))
}

/// The mount point `dst` inside the root, created when missing. When the
/// image's directory cannot take it (a sandbox owned by another user, whose
/// directories the overlay cannot copy up into the user's namespace), an
/// empty parent directory is covered with a small tmpfs to hold it, as
/// nothing in it is hidden; a non-empty one is an error that says why.
fn mount_point(root: &OwnedFd, dst: &Path, file: bool) -> Result<OwnedFd, LaunchError> {
    match ensure_in_root(root, dst, file) {
        Ok(fd) => Ok(fd),
        // The parent is not ours to change.
        Err(e)
            if matches!(
                e.errno(),
                Some(Errno::OVERFLOW | Errno::PERM | Errno::ACCESS | Errno::ROFS)
            ) =>
        {
            let parent = dst.parent().unwrap_or(Path::new("/"));
            let pfd = open_in_root(root, parent).map_err(|_| LaunchError::Image(e.to_string()))?;
            let host_parent = fs::read_link(fd_path(&pfd))?;
            let empty = fs::read_dir(&host_parent)
                .map(|mut d| d.next().is_none())
                .unwrap_or(false);
            if !empty || parent == Path::new("/") {
                return Err(LaunchError::Image(format!(
                    "cannot create the mount point {} in the image ({e}); the image may belong to another user: create the directory in the image, or use --no-mount or --no-home",
                    dst.display()
                )));
            }
            m::mount_fs(
                "tmpfs",
                &fd_path(&pfd),
                FsFlags {
                    nosuid: true,
                    nodev: true,
                    ..FsFlags::default()
                },
                "size=1m,mode=0755",
            )?;
            Ok(ensure_in_root(root, dst, file)?)
        }
        Err(e) => Err(e.into()),
    }
}

fn apply(mount: &Mount, root: &OwnedFd, session: &Path) -> Result<(), LaunchError> {
    match mount {
        Mount::Bind {
            src,
            dst,
            readonly,
            recursive,
        } => {
            let src_fd = open_host(src)?;
            let target = mount_point(root, dst, !is_dir(&src_fd))?;
            match m::bind(&fd_path(&src_fd), &fd_path(&target), *recursive) {
                // A directory with mounts below it that the namespace got
                // locked from the host (another job's, mounted under /tmp
                // as this one started) can only be bound with them.
                Err(e) if !*recursive && e.errno() == Some(Errno::INVAL) => {
                    tracing::debug!("{e}: binding {} with the mounts below it", src.display());
                    m::bind(&fd_path(&src_fd), &fd_path(&target), true)?
                }
                other => other?,
            }
            if *readonly {
                let mounted = open_in_root(root, dst)?;
                m::remount_bind(&fd_path(&mounted), true)?;
            }
        }
        Mount::Tmpfs {
            dst,
            size_mib,
            mode,
        } => {
            let target = mount_point(root, dst, false)?;
            let mut options = format!("mode={mode:o}");
            if let Some(s) = size_mib {
                options.push_str(&format!(",size={s}m"));
            }
            m::mount_fs(
                "tmpfs",
                &fd_path(&target),
                FsFlags {
                    nosuid: true,
                    nodev: true,
                    ..FsFlags::default()
                },
                &options,
            )?;
        }
        Mount::SessionDir { name, dst } => {
            let dir = session.join("dirs").join(name);
            fs::create_dir_all(&dir)?;
            let target = mount_point(root, dst, false)?;
            m::bind(&dir, &fd_path(&target), false)?;
        }
        Mount::SessionFile { name, content, dst } => {
            let file = session.join("files").join(name);
            fs::write(&file, content)?;
            let target = mount_point(root, dst, true)?;
            m::bind(&file, &fd_path(&target), false)?;
        }
        Mount::Symlink { target, at } => {
            let parent = at.parent().unwrap_or(Path::new("/"));
            let dir = open_in_root(root, parent)?;
            let host_dir = fs::read_link(fd_path(&dir))?;
            let link = host_dir.join(at.file_name().unwrap_or_default());
            match std::os::unix::fs::symlink(target, &link) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e.into()),
            }
        }
        Mount::Devpts { dst } => {
            let target = ensure_in_root(root, dst, false)?;
            m::mount_fs(
                "devpts",
                &fd_path(&target),
                FsFlags {
                    nosuid: true,
                    noexec: true,
                    ..FsFlags::default()
                },
                "newinstance,ptmxmode=0666,mode=0620",
            )?;
        }
    }
    Ok(())
}

/// The payload side of the fork. Never returns: it execs or exits.
fn payload(plan: &LaunchPlan, root: &Path, mask: &SignalMask) -> ! {
    let fail = |what: &str, e: &dyn std::fmt::Display| -> ! {
        eprintln!("FATAL:   {what}: {e}");
        p::exit_now(255)
    };
    if let Err(e) = p::die_with_parent() {
        fail("setting up the container process", &e);
    }
    // A mount namespace of its own, so that pivoting does not move the
    // monitor's root too.
    let own_ns = vessel_sys::ns::Namespaces {
        mount: true,
        ..Default::default()
    };
    if let Err(e) = vessel_sys::ns::unshare(own_ns).and_then(|()| m::make_private_recursive()) {
        fail("setting up the container's mounts", &e);
    }
    if plan.new_proc {
        let proc_dir = root.join("proc");
        let _ = fs::create_dir_all(&proc_dir);
        if let Err(e) = m::mount_fs(
            "proc",
            &proc_dir,
            FsFlags {
                nosuid: true,
                nodev: true,
                noexec: true,
                ..FsFlags::default()
            },
            "",
        ) {
            fail("mounting /proc", &e);
        }
    }
    if let Err(e) = p::chdir(root)
        .and_then(|()| m::pivot_root(Path::new("."), Path::new(".")))
        .and_then(|()| m::unmount_detach(Path::new(".")))
        .and_then(|()| p::chdir(Path::new("/")))
    {
        fail("entering the container", &e);
    }
    if p::chdir(&plan.cwd).is_err() {
        let fallback = if p::chdir(&plan.home).is_ok() {
            plan.home.clone()
        } else {
            PathBuf::from("/")
        };
        let _ = p::chdir(&fallback);
        eprintln!(
            "WARNING: the working directory {} does not exist in the container, using {}",
            plan.cwd.display(),
            fallback.display()
        );
    }
    if let Err(e) = p::set_no_new_privs() {
        fail("setting no_new_privs", &e);
    }
    if plan.new_proc {
        init(plan, mask)
    }
    if let Err(e) = mask.restore() {
        fail("restoring the signal mask", &e);
    }
    let err = p::exec(&plan.argv, &plan.env);
    fail("could not run the command", &err)
}

/// PID 1 of a new PID namespace: starts the payload, relays signals to it,
/// reaps every orphan, and exits with the payload's status.
fn init(plan: &LaunchPlan, mask: &SignalMask) -> ! {
    let child = match p::fork() {
        Ok(Fork::Child) => {
            let _ = mask.restore();
            let err = p::exec(&plan.argv, &plan.env);
            eprintln!("FATAL:   could not run the command: {err}");
            p::exit_now(255)
        }
        Ok(Fork::Parent(pid)) => pid,
        Err(e) => {
            eprintln!("FATAL:   starting the container's init: {e}");
            p::exit_now(255)
        }
    };
    match monitor(child, mask) {
        Ok(status) => p::exit_now(status),
        Err(_) => p::exit_now(255),
    }
}

/// Relays signals to `child` until it ends, reaping any other child on the
/// way; returns the shell-style status.
fn monitor(child: p::Pid, mask: &SignalMask) -> Result<i32, LaunchError> {
    loop {
        let received = mask.wait()?;
        if received.signal == SIGCHLD {
            while let Some((pid, exit)) = p::reap_any()? {
                if pid == child {
                    // Reap whatever else is left before leaving.
                    while let Ok(Some(_)) = p::reap_any() {}
                    return Ok(match exit {
                        Exit::Code(c) => c,
                        Exit::Signal(_) => exit.status(),
                    });
                }
            }
            continue;
        }
        // A terminal's Ctrl-C already reached the payload, which shares our
        // process group: sending it again would deliver it twice.
        if !received.from_kernel {
            p::kill(child, received.signal)?;
        }
    }
}
