//! The root assembly: the container's `/` built under the session
//! directory from the root plan, in the monitor, before the payload is
//! released. The image (with any overlay layers) becomes the root, each
//! planned mount is carried out inside it, and a read-only root is made
//! read-only last, once every mount point exists.
//!
//! Every kernel call goes through [`Syscall`], so the order of the calls
//! is unit-tested below against the recording fake, without privilege;
//! the launch passes the real [`super::kernel::Kernel`].

use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use vessel_sys::mount::FsFlags;
use vessel_sys::syscall::{Entry, Syscall};
use vessel_sys::Errno;

use super::{kernel_hint, LaunchError};
use crate::plan::{LaunchPlan, Layering, Mount, RootMode};

/// The flags of every file system the executor mounts in the root.
const NOSUID_NODEV: FsFlags = FsFlags {
    nosuid: true,
    nodev: true,
    noexec: false,
    readonly: false,
};

/// The flags of the root's own mount: `nosuid` unless `--allow-setuid`.
fn root_flags(plan: &LaunchPlan) -> FsFlags {
    FsFlags {
        nosuid: !plan.allow_setuid,
        ..NOSUID_NODEV
    }
}

/// Mounts an overlay through `fuse-overlayfs`: its options, and where.
pub(super) type FuseOverlay<'a> = dyn FnMut(&str, &Path) -> Result<(), LaunchError> + 'a;

/// Builds the container's `/` under the session directory; returns it.
/// `fuse_overlay` mounts an overlay with `fuse-overlayfs` where the plan's
/// layering asks for it, or where the kernel refuses its own.
pub(super) fn assemble_root<S: Syscall>(
    sys: &S,
    plan: &LaunchPlan,
    session: &Path,
    fuse_overlay: &mut FuseOverlay,
) -> Result<PathBuf, LaunchError> {
    let root = session.join("root");
    for d in ["root", "upper", "work", "files", "dirs", "covers"] {
        sys.create_dir(&session.join(d), false)?;
    }
    let layers: Vec<PathBuf> = plan
        .read_only_layers
        .iter()
        .chain([&plan.lower])
        .cloned()
        .collect();
    let mut layering = plan.layering;
    let (upper, work) = match &plan.root_mode {
        RootMode::Overlay { upper } => {
            let (u, w) = (upper.join("upper"), upper.join("work"));
            sys.create_dir(&u, true)
                .and_then(|()| sys.create_dir(&w, true))
                .map_err(|e| LaunchError::OverlayDir {
                    dir: upper.clone(),
                    source: e.errno,
                })?;
            (u, w)
        }
        _ => (session.join("upper"), session.join("work")),
    };
    if plan.root_mode == RootMode::Writable {
        sys.bind(&plan.lower, &root, true)?;
    } else {
        if layering == Layering::Underlay && !plan.read_only_layers.is_empty() {
            // Only an overlay can stack layers.
            layering = Layering::Kernel;
        }
        if layering == Layering::Kernel {
            let options = overlay_options(&layers, &upper, &work, plan.user_namespace)?;
            match sys.mount_fs("overlay", &root, root_flags(plan), &options) {
                Ok(()) => {}
                // A kernel without overlayfs in user namespaces (before
                // 5.11, as EL8's 4.18): what Apptainer falls back to.
                Err(e) if plan.user_namespace && overlay_refused(&e) => {
                    layering = if plan.root_mode == RootMode::ReadOnly
                        && plan.read_only_layers.is_empty()
                    {
                        Layering::Underlay
                    } else {
                        Layering::FuseOverlayfs
                    };
                    tracing::debug!(
                        "the kernel refused an overlay in the user namespace ({e}): using {}",
                        layering_name(layering)
                    );
                }
                Err(e) => {
                    return Err(kernel_hint(
                        "could not mount the container's root file system (overlayfs in a user namespace needs Linux 5.11 or newer)",
                        e,
                    ))
                }
            }
        }
        match layering {
            Layering::Kernel => {}
            Layering::FuseOverlayfs => {
                tracing::debug!("root: an overlay through fuse-overlayfs");
                let options = overlay_options(&layers, &upper, &work, false)?;
                fuse_overlay(&options, &root)?;
            }
            Layering::Underlay => {
                tracing::debug!("root: an underlay of {}", plan.lower.display());
                underlay(sys, &plan.lower, &root, !plan.allow_setuid)?;
            }
        }
    }
    let root_fd = sys.open_dir(&root)?;
    for (index, mount) in plan.mounts.iter().enumerate() {
        apply(sys, mount, &root_fd, session, index, layering).map_err(|e| match mount {
            Mount::Bind { src, dst, .. } => LaunchError::Bind {
                src: src.clone(),
                dst: dst.clone(),
                source: Box::new(e),
            },
            _ => e,
        })?;
    }
    if plan.root_mode == RootMode::ReadOnly {
        sys.remount_bind(&root, true, !plan.allow_setuid)?;
    }
    Ok(root)
}

/// The options of an overlay mount of `layers` (topmost first, the image
/// last) with a writable `upper`; refuses paths the option string cannot
/// carry.
fn overlay_options(
    layers: &[PathBuf],
    upper: &Path,
    work: &Path,
    userxattr: bool,
) -> Result<String, LaunchError> {
    for p in layers.iter().map(PathBuf::as_path).chain([upper, work]) {
        let s = p.to_string_lossy();
        if s.contains(',') || s.contains(':') {
            return Err(LaunchError::OverlayPath(s.into_owned()));
        }
    }
    let lowerdir: Vec<String> = layers.iter().map(|l| l.display().to_string()).collect();
    Ok(format!(
        "lowerdir={},upperdir={},workdir={}{}",
        lowerdir.join(":"),
        upper.display(),
        work.display(),
        if userxattr { ",userxattr" } else { "" }
    ))
}

/// Whether the kernel refused an overlay for want of support (rather
/// than for a problem with a layer), so that another way may work.
fn overlay_refused(e: &vessel_sys::SysError) -> bool {
    matches!(
        e.errno(),
        Some(Errno::PERM | Errno::INVAL | Errno::NODEV | Errno::NOTSUP)
    )
}

fn layering_name(l: Layering) -> &'static str {
    match l {
        Layering::Kernel => "the kernel's overlayfs",
        Layering::FuseOverlayfs => "fuse-overlayfs",
        Layering::Underlay => "an underlay",
    }
}

/// An underlay of `lower` at `target`: a small tmpfs holding each of
/// `lower`'s entries, directories and files bound read-only from it and
/// links copied, so that mount points can be made in it without an
/// overlay, as Apptainer's underlay does.
fn underlay<S: Syscall>(
    sys: &S,
    lower: &Path,
    target: &Path,
    nosuid: bool,
) -> Result<(), LaunchError> {
    let entries = sys.entries(lower)?;
    sys.mount_fs("tmpfs", target, NOSUID_NODEV, "size=1m,mode=0755")?;
    fill_underlay(sys, lower, entries, target, nosuid)
}

/// Reproduces `entries` of `lower` in the directory `dir` (see
/// [`underlay`]).
fn fill_underlay<S: Syscall>(
    sys: &S,
    lower: &Path,
    entries: Vec<(std::ffi::OsString, Entry)>,
    dir: &Path,
    nosuid: bool,
) -> Result<(), LaunchError> {
    for (name, entry) in entries {
        let (src, dst) = (lower.join(&name), dir.join(&name));
        match entry {
            Entry::Dir => {
                sys.create_dir(&dst, false)?;
                sys.bind(&src, &dst, true)?;
                sys.remount_bind(&dst, true, nosuid)?;
            }
            Entry::File => {
                sys.write_file(&dst, b"")?;
                sys.bind(&src, &dst, false)?;
                sys.remount_bind(&dst, true, nosuid)?;
            }
            Entry::Symlink(to) => sys.symlink(&to, &dst)?,
            Entry::Other => {}
        }
    }
    Ok(())
}

/// The mount point `dst` inside the root, created when missing.
///
/// When the image's directory cannot take it (its owner in the image is
/// another user, as busybox's `/home` is `nobody`'s, or a sandbox belongs
/// to someone else), the mount point is made in a layer of the session
/// instead, as Apptainer does: the deepest directory on the way that
/// exists is covered with a small tmpfs when it is empty, and otherwise
/// with an overlay whose lower layer is that directory itself, so that
/// everything in it still shows, and whose upper layer is ours, under
/// `session/covers/INDEX`. The directory is found inside the root, never
/// following a link out of it; only the root itself is never covered.
fn mount_point<S: Syscall>(
    sys: &S,
    root: &S::Handle,
    dst: &Path,
    file: bool,
    cover: &Path,
    layering: Layering,
) -> Result<S::Handle, LaunchError> {
    match sys.ensure_in_root(root, dst, file) {
        Ok(fd) => Ok(fd),
        // The directory is not ours to change.
        Err(e)
            if matches!(
                e.errno(),
                Some(Errno::OVERFLOW | Errno::PERM | Errno::ACCESS | Errno::ROFS)
            ) =>
        {
            // The deepest directory that exists: the one the first missing
            // component could not be made in.
            let mut parent = dst.parent().unwrap_or(Path::new("/"));
            let pfd = loop {
                match sys.open_in_root(root, parent) {
                    Ok(pfd) => break pfd,
                    Err(_) => match parent.parent() {
                        Some(up) => parent = up,
                        None => return Err(LaunchError::Sys(e)),
                    },
                }
            };
            if parent == Path::new("/") || !sys.is_dir(&pfd) {
                return Err(LaunchError::MountPoint {
                    dst: dst.to_path_buf(),
                    source: e,
                });
            }
            let at = sys.mount_path(&pfd);
            if sys.is_empty_dir(&sys.host_path(&pfd)?) {
                tracing::debug!(
                    "{e}: covering the empty {} with a tmpfs to hold {}",
                    parent.display(),
                    dst.display()
                );
                sys.mount_fs("tmpfs", &at, NOSUID_NODEV, "size=1m,mode=0755")?;
            } else {
                let (upper, work) = (cover.join("upper"), cover.join("work"));
                for d in [cover, &upper, &work] {
                    sys.create_dir(d, false)?;
                }
                let by_overlay = layering != Layering::Underlay && {
                    tracing::debug!(
                        "{e}: covering {} with an overlay of itself to hold {}",
                        parent.display(),
                        dst.display()
                    );
                    // Only mount points are made in it: nothing is ever
                    // removed, so it needs no whiteouts (`userxattr`).
                    let options = overlay_options(std::slice::from_ref(&at), &upper, &work, false)?;
                    match sys.mount_fs("overlay", &at, NOSUID_NODEV, &options) {
                        Ok(()) => true,
                        Err(o) => {
                            tracing::debug!("{o}");
                            false
                        }
                    }
                };
                if !by_overlay {
                    tracing::debug!(
                        "{e}: covering {} with an underlay of itself to hold {}",
                        parent.display(),
                        dst.display()
                    );
                    let lower = cover.join("lower");
                    sys.create_dir(&lower, false)?;
                    sys.bind(&at, &lower, true)?;
                    let entries = sys.entries(&lower)?;
                    sys.mount_fs("tmpfs", &at, NOSUID_NODEV, "size=1m,mode=0755")
                        .map_err(|u| {
                            tracing::debug!("{u}");
                            LaunchError::MountPoint {
                                dst: dst.to_path_buf(),
                                source: e,
                            }
                        })?;
                    // The directory again: the tmpfs now on it.
                    let covered = sys.open_in_root(root, parent)?;
                    fill_underlay(sys, &lower, entries, &sys.mount_path(&covered), true)?;
                }
            }
            Ok(sys.ensure_in_root(root, dst, file)?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Symbolic links `(target, name)` in the container directory `dir`, made
/// where missing; a name already there is kept.
fn make_links<'a, S: Syscall>(
    sys: &S,
    root: &S::Handle,
    dir: &Path,
    links: impl IntoIterator<Item = (&'a str, &'a OsStr)>,
) -> Result<(), LaunchError> {
    let at = sys.ensure_in_root(root, dir, false)?;
    let host_dir = sys.host_path(&at)?;
    for (target, name) in links {
        match sys.symlink(Path::new(target), &host_dir.join(name)) {
            Err(e) if e.errno() != Some(Errno::EXIST) => return Err(e.into()),
            _ => {}
        }
    }
    Ok(())
}

/// Carries out one step of the root plan inside `root`.
fn apply<S: Syscall>(
    sys: &S,
    mount: &Mount,
    root: &S::Handle,
    session: &Path,
    index: usize,
    layering: Layering,
) -> Result<(), LaunchError> {
    // Where this step's mount point may be made, if the image refuses it.
    let cover = session.join("covers").join(index.to_string());
    match mount {
        Mount::Bind {
            src,
            dst,
            readonly,
            recursive,
        } => {
            let src_fd = sys.open_host(src)?;
            let target = mount_point(sys, root, dst, !sys.is_dir(&src_fd), &cover, layering)?;
            let (from, to) = (sys.mount_path(&src_fd), sys.mount_path(&target));
            match sys.bind(&from, &to, *recursive) {
                // A directory with mounts below it that the namespace got
                // locked from the host (another job's, mounted under /tmp
                // as this one started) can only be bound with them.
                Err(e) if !*recursive && e.errno() == Some(Errno::INVAL) => {
                    tracing::debug!("{e}: binding {} with the mounts below it", src.display());
                    sys.bind(&from, &to, true)?
                }
                other => other?,
            }
            if *readonly {
                // The new mount, not the directory it covers.
                let mounted = sys.open_in_root(root, dst)?;
                sys.remount_bind(&sys.mount_path(&mounted), true, true)?;
            }
        }
        Mount::Tmpfs {
            dst,
            size_mib,
            mode,
        } => {
            let target = mount_point(sys, root, dst, false, &cover, layering)?;
            let mut options = format!("mode={mode:o}");
            if let Some(s) = size_mib {
                options.push_str(&format!(",size={s}m"));
            }
            sys.mount_fs("tmpfs", &sys.mount_path(&target), NOSUID_NODEV, &options)?;
        }
        Mount::SessionDir { name, dst } => {
            let dir = session.join("dirs").join(name);
            sys.create_dir(&dir, true)?;
            let target = mount_point(sys, root, dst, false, &cover, layering)?;
            sys.bind(&dir, &sys.mount_path(&target), false)?;
        }
        Mount::SessionFile {
            name,
            content,
            dst,
            readonly,
        } => {
            let file = session.join("files").join(name);
            sys.write_file(&file, content.as_bytes())?;
            let target = mount_point(sys, root, dst, true, &cover, layering)?;
            sys.bind(&file, &sys.mount_path(&target), false)?;
            if *readonly {
                let mounted = sys.open_in_root(root, dst)?;
                sys.remount_bind(&sys.mount_path(&mounted), true, true)?;
            }
        }
        Mount::Symlink { target, at } => {
            let parent = at.parent().unwrap_or(Path::new("/"));
            let name = at.file_name().unwrap_or_default();
            make_links(sys, root, parent, [(target.as_str(), name)])?;
        }
        Mount::Symlinks { dir, links } => {
            let links = links.iter().map(|(t, n)| (t.as_str(), OsStr::new(n)));
            make_links(sys, root, dir, links)?;
        }
        Mount::Devpts { dst } => {
            let target = sys.ensure_in_root(root, dst, false)?;
            sys.mount_fs(
                "devpts",
                &sys.mount_path(&target),
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

#[cfg(test)]
mod tests {
    use super::*;
    use vessel_sys::syscall::{Call, Recorder};

    fn plan(root_mode: RootMode, mounts: Vec<Mount>) -> LaunchPlan {
        LaunchPlan {
            lower: "/image".into(),
            read_only_layers: Vec::new(),
            user_namespace: false,
            layering: crate::plan::Layering::Kernel,
            root_mode,
            new_proc: false,
            shim_init: false,
            umask: None,
            no_new_privs: true,
            capabilities: None,
            allow_setuid: false,
            mounts,
            nvccli: None,
            cwd: "/".into(),
            home: "/home/me".into(),
            argv: vec!["true".into()],
            env: Vec::new(),
            native: None,
            basis: Default::default(),
            warnings: Vec::new(),
        }
    }

    fn bind(src: &str, dst: &str, readonly: bool) -> Mount {
        Mount::Bind {
            src: src.into(),
            dst: dst.into(),
            readonly,
            recursive: false,
        }
    }

    fn mount(fstype: &str, dst: &str, flags: &str, options: &str) -> Call {
        Call::Mount {
            fstype: fstype.into(),
            dst: dst.into(),
            flags: flags.into(),
            options: options.into(),
        }
    }

    fn bind_call(src: &str, dst: &str, recursive: bool) -> Call {
        Call::Bind {
            src: src.into(),
            dst: dst.into(),
            recursive,
        }
    }

    fn remount(dst: &str) -> Call {
        Call::Remount {
            dst: dst.into(),
            readonly: true,
            nosuid: true,
        }
    }

    const ROOT_OVERLAY: &str = "lowerdir=/image,upperdir=/s/upper,workdir=/s/work";

    fn assemble(sys: &Recorder, plan: &LaunchPlan) -> Result<PathBuf, LaunchError> {
        assemble_with(sys, plan).map(|(root, _)| root)
    }

    /// Also returns the `fuse-overlayfs` mounts asked for.
    fn assemble_with(
        sys: &Recorder,
        plan: &LaunchPlan,
    ) -> Result<(PathBuf, Vec<(String, PathBuf)>), LaunchError> {
        let mut fuse = Vec::new();
        let mut record = |options: &str, target: &Path| {
            fuse.push((options.to_string(), target.to_path_buf()));
            Ok(())
        };
        let root = assemble_root(sys, plan, Path::new("/s"), &mut record)?;
        Ok((root, fuse))
    }

    #[test]
    fn an_underlay_binds_the_images_entries_read_only_into_a_tmpfs() {
        let sys = Recorder::new().with_entries(
            "/image",
            &[
                ("bin", Entry::Symlink("usr/bin".into())),
                ("etc", Entry::Dir),
                ("hello", Entry::File),
                ("null", Entry::Other),
            ],
        );
        let mut p = plan(RootMode::ReadOnly, vec![]);
        p.layering = Layering::Underlay;
        assemble(&sys, &p).unwrap();
        assert_eq!(
            sys.mounts(),
            vec![
                mount("tmpfs", "/s/root", "nosuid,nodev", "size=1m,mode=0755"),
                Call::Bind {
                    src: "/image/etc".into(),
                    dst: "/s/root/etc".into(),
                    recursive: true
                },
                remount("/s/root/etc"),
                Call::Bind {
                    src: "/image/hello".into(),
                    dst: "/s/root/hello".into(),
                    recursive: false
                },
                remount("/s/root/hello"),
                remount("/s/root"),
            ]
        );
        assert!(sys.calls().contains(&Call::Symlink {
            target: "usr/bin".into(),
            link: "/s/root/bin".into()
        }));
    }

    #[test]
    fn a_kernel_without_overlays_in_user_namespaces_falls_back() {
        for (mode, underlay) in [(RootMode::ReadOnly, true), (RootMode::WritableTmpfs, false)] {
            let sys = Recorder::new();
            sys.fail(
                mount(
                    "overlay",
                    "/s/root",
                    "nosuid,nodev",
                    &format!("{ROOT_OVERLAY},userxattr"),
                ),
                Errno::INVAL,
            );
            let mut p = plan(mode, vec![]);
            p.user_namespace = true;
            let (_, fuse) = assemble_with(&sys, &p).unwrap();
            let tmpfs_root = sys
                .mounts()
                .iter()
                .any(|c| matches!(c, Call::Mount { fstype, .. } if fstype == "tmpfs"));
            assert_eq!(tmpfs_root, underlay);
            assert_eq!(fuse.is_empty(), underlay, "{fuse:?}");
        }
    }

    #[test]
    fn the_site_can_ask_for_fuse_overlayfs() {
        let sys = Recorder::new();
        let mut p = plan(RootMode::WritableTmpfs, vec![]);
        p.layering = Layering::FuseOverlayfs;
        let (_, fuse) = assemble_with(&sys, &p).unwrap();
        assert_eq!(
            fuse,
            vec![(ROOT_OVERLAY.to_string(), PathBuf::from("/s/root"))]
        );
        assert!(sys.mounts().is_empty());
    }

    #[test]
    fn a_read_only_root_is_an_overlay_made_read_only_last() {
        let sys = Recorder::new();
        let root = assemble(&sys, &plan(RootMode::ReadOnly, vec![])).unwrap();
        assert_eq!(root, Path::new("/s/root"));
        let dirs: Vec<Call> = ["root", "upper", "work", "files", "dirs", "covers"]
            .iter()
            .map(|d| Call::CreateDir {
                path: Path::new("/s").join(d),
                all: false,
            })
            .collect();
        assert_eq!(sys.calls()[..6], dirs[..]);
        assert_eq!(
            sys.mounts(),
            vec![
                mount("overlay", "/s/root", "nosuid,nodev", ROOT_OVERLAY),
                remount("/s/root"),
            ]
        );
    }

    #[test]
    fn a_writable_tmpfs_root_is_left_writable() {
        let sys = Recorder::new();
        assemble(&sys, &plan(RootMode::WritableTmpfs, vec![])).unwrap();
        assert_eq!(
            sys.mounts(),
            vec![mount("overlay", "/s/root", "nosuid,nodev", ROOT_OVERLAY)]
        );
    }

    #[test]
    fn writable_binds_the_lower_directly() {
        let sys = Recorder::new();
        assemble(
            &sys,
            &plan(RootMode::Writable, vec![bind("/d", "/d", false)]),
        )
        .unwrap();
        assert_eq!(
            sys.mounts(),
            vec![
                bind_call("/image", "/s/root", true),
                bind_call("/d", "/s/root/d", false),
            ]
        );
    }

    #[test]
    fn overlay_layers_stack_topmost_first_on_the_image() {
        let sys = Recorder::new();
        let mut p = plan(
            RootMode::Overlay {
                upper: "/ov".into(),
            },
            vec![],
        );
        p.read_only_layers = vec!["/top".into(), "/mid".into()];
        assemble(&sys, &p).unwrap();
        let calls = sys.calls();
        assert!(calls.contains(&Call::CreateDir {
            path: "/ov/upper".into(),
            all: true
        }));
        assert!(calls.contains(&Call::CreateDir {
            path: "/ov/work".into(),
            all: true
        }));
        assert_eq!(
            sys.mounts(),
            vec![mount(
                "overlay",
                "/s/root",
                "nosuid,nodev",
                "lowerdir=/top:/mid:/image,upperdir=/ov/upper,workdir=/ov/work"
            )]
        );
    }

    #[test]
    fn an_overlay_directory_that_cannot_be_made_is_named() {
        let sys = Recorder::new();
        sys.fail(
            Call::CreateDir {
                path: "/ov/upper".into(),
                all: true,
            },
            Errno::ACCESS,
        );
        let e = assemble(
            &sys,
            &plan(
                RootMode::Overlay {
                    upper: "/ov".into(),
                },
                vec![],
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("overlay directory /ov: "), "{e}");
        assert!(sys.mounts().is_empty());
    }

    #[test]
    fn paths_overlay_options_cannot_carry_are_refused() {
        let sys = Recorder::new();
        let mut p = plan(RootMode::ReadOnly, vec![]);
        p.lower = "/images/a:b".into();
        let e = assemble(&sys, &p).unwrap_err().to_string();
        assert!(e.contains("contains ',' or ':'"), "{e}");
        assert!(sys.mounts().is_empty());
    }

    #[test]
    fn a_read_only_bind_is_a_bind_then_a_read_only_remount() {
        let sys = Recorder::new();
        let mounts = vec![
            bind("/data", "/data", true),
            bind("/scratch", "/mnt", false),
        ];
        assemble(&sys, &plan(RootMode::WritableTmpfs, mounts)).unwrap();
        assert_eq!(
            sys.mounts()[1..],
            [
                bind_call("/data", "/s/root/data", false),
                remount("/s/root/data"),
                bind_call("/scratch", "/s/root/mnt", false),
            ]
        );
    }

    #[test]
    fn a_file_is_bound_on_a_file_mount_point() {
        let sys = Recorder::new().with_file("/etc/resolv.conf");
        let mounts = vec![bind("/etc/resolv.conf", "/etc/resolv.conf", false)];
        assemble(&sys, &plan(RootMode::WritableTmpfs, mounts)).unwrap();
        assert!(sys.calls().contains(&Call::EnsureInRoot {
            path: "/etc/resolv.conf".into(),
            file: true
        }));
    }

    #[test]
    fn a_bind_refused_for_locked_mounts_below_is_made_recursive() {
        let sys = Recorder::new();
        sys.fail(bind_call("/tmp", "/s/root/tmp", false), Errno::INVAL);
        assemble(
            &sys,
            &plan(RootMode::WritableTmpfs, vec![bind("/tmp", "/tmp", false)]),
        )
        .unwrap();
        assert_eq!(
            sys.mounts()[1..],
            [
                bind_call("/tmp", "/s/root/tmp", false),
                bind_call("/tmp", "/s/root/tmp", true),
            ]
        );
    }

    #[test]
    fn a_failed_bind_names_source_and_destination() {
        let sys = Recorder::new();
        sys.fail(bind_call("/data", "/s/root/data", false), Errno::PERM);
        let e = assemble(
            &sys,
            &plan(RootMode::ReadOnly, vec![bind("/data", "/data", true)]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("could not bind /data to /data in the container: "),
            "{e}"
        );
        // Nothing after the failure: no remount of the bind or the root.
        assert_eq!(
            sys.mounts().last(),
            Some(&bind_call("/data", "/s/root/data", false))
        );
    }

    #[test]
    fn a_refused_empty_parent_gets_a_small_tmpfs_cover() {
        for errno in [Errno::ACCESS, Errno::PERM, Errno::ROFS, Errno::OVERFLOW] {
            let sys = Recorder::new();
            let point = Call::EnsureInRoot {
                path: "/home/me".into(),
                file: false,
            };
            sys.fail(point.clone(), errno);
            let mounts = vec![bind("/u/me", "/home/me", false)];
            assemble(&sys, &plan(RootMode::ReadOnly, mounts)).unwrap();
            let calls = sys.calls();
            assert_eq!(
                calls.iter().filter(|c| **c == point).count(),
                2,
                "{errno:?}"
            );
            assert_eq!(
                sys.mounts()[1..],
                [
                    mount("tmpfs", "/s/root/home", "nosuid,nodev", "size=1m,mode=0755"),
                    bind_call("/u/me", "/s/root/home/me", false),
                    remount("/s/root"),
                ],
                "{errno:?}"
            );
        }
    }

    #[test]
    fn a_refused_parent_with_content_is_covered_with_an_overlay_of_itself() {
        let sys = Recorder::new().with_content("/s/root/home/wf/.cache");
        let point = Call::EnsureInRoot {
            path: "/home/wf/.cache/x".into(),
            file: false,
        };
        sys.fail(point.clone(), Errno::ACCESS);
        let mounts = vec![
            bind("/u/me", "/elsewhere", false),
            bind("/u/x", "/home/wf/.cache/x", false),
        ];
        let mut p = plan(RootMode::ReadOnly, mounts);
        p.home = "/elsewhere".into();
        assemble(&sys, &p).unwrap();
        let calls = sys.calls();
        for d in ["/s/covers/1", "/s/covers/1/upper", "/s/covers/1/work"] {
            assert!(
                calls.contains(&Call::CreateDir {
                    path: d.into(),
                    all: false
                }),
                "{d}"
            );
        }
        assert_eq!(calls.iter().filter(|c| **c == point).count(), 2);
        assert_eq!(
            sys.mounts()[1..],
            [
                bind_call("/u/me", "/s/root/elsewhere", false),
                mount(
                    "overlay",
                    "/s/root/home/wf/.cache",
                    "nosuid,nodev",
                    "lowerdir=/s/root/home/wf/.cache,upperdir=/s/covers/1/upper,workdir=/s/covers/1/work"
                ),
                bind_call("/u/x", "/s/root/home/wf/.cache/x", false),
                remount("/s/root"),
            ]
        );
    }

    fn refused_cover(sys: &Recorder) {
        sys.fail(
            Call::EnsureInRoot {
                path: "/home/me".into(),
                file: false,
            },
            Errno::ACCESS,
        );
        sys.fail(
            mount(
                "overlay",
                "/s/root/home",
                "nosuid,nodev",
                "lowerdir=/s/root/home,upperdir=/s/covers/0/upper,workdir=/s/covers/0/work",
            ),
            Errno::INVAL,
        );
    }

    #[test]
    fn a_cover_the_kernel_refuses_as_an_overlay_is_an_underlay() {
        let sys = Recorder::new()
            .with_content("/s/root/home")
            .with_entries("/s/covers/0/lower", &[("other", Entry::Dir)]);
        refused_cover(&sys);
        let mounts = vec![bind("/u/me", "/home/me", false)];
        assemble(&sys, &plan(RootMode::ReadOnly, mounts)).unwrap();
        let m = sys.mounts();
        assert!(
            m.contains(&bind_call("/s/root/home", "/s/covers/0/lower", true)),
            "{m:?}"
        );
        assert!(m.contains(&mount(
            "tmpfs",
            "/s/root/home",
            "nosuid,nodev",
            "size=1m,mode=0755"
        )));
        assert!(m.contains(&bind_call(
            "/s/covers/0/lower/other",
            "/s/root/home/other",
            true
        )));
    }

    #[test]
    fn a_cover_the_kernel_refuses_is_a_clear_error() {
        let sys = Recorder::new().with_content("/s/root/home");
        refused_cover(&sys);
        sys.fail(
            mount("tmpfs", "/s/root/home", "nosuid,nodev", "size=1m,mode=0755"),
            Errno::PERM,
        );
        let mounts = vec![bind("/u/me", "/home/me", false)];
        let e = assemble(&sys, &plan(RootMode::ReadOnly, mounts))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cannot create the mount point /home/me in the image"),
            "{e}"
        );
        assert!(e.contains("--no-mount or --no-home"), "{e}");
    }

    #[test]
    fn the_root_itself_is_never_covered() {
        let sys = Recorder::new();
        sys.fail(
            Call::EnsureInRoot {
                path: "/data".into(),
                file: false,
            },
            Errno::ROFS,
        );
        let mounts = vec![bind("/data", "/data", false)];
        let e = assemble(&sys, &plan(RootMode::ReadOnly, mounts)).unwrap_err();
        assert!(e
            .to_string()
            .contains("cannot create the mount point /data"));
    }

    #[test]
    fn other_mount_point_errors_are_passed_on() {
        let sys = Recorder::new();
        sys.fail(
            Call::EnsureInRoot {
                path: "/home/me".into(),
                file: false,
            },
            Errno::NOSPC,
        );
        let mounts = vec![Mount::Tmpfs {
            dst: "/home/me".into(),
            size_mib: None,
            mode: 0o700,
        }];
        let e = assemble(&sys, &plan(RootMode::ReadOnly, mounts)).unwrap_err();
        assert!(
            matches!(&e, LaunchError::Sys(s) if s.errno() == Some(Errno::NOSPC)),
            "{e}"
        );
    }

    #[test]
    fn session_files_dirs_tmpfs_links_and_devpts() {
        let sys = Recorder::new();
        let mounts = vec![
            Mount::SessionFile {
                name: "passwd".into(),
                content: "me:x:1000:1000::/home/me:/bin/sh\n".into(),
                dst: "/etc/passwd".into(),
                readonly: false,
            },
            Mount::SessionDir {
                name: "tmp".into(),
                dst: "/tmp".into(),
            },
            Mount::Tmpfs {
                dst: "/dev".into(),
                size_mib: Some(1),
                mode: 0o755,
            },
            Mount::Symlink {
                target: "/proc/self/fd".into(),
                at: "/dev/fd".into(),
            },
            Mount::Devpts {
                dst: "/dev/pts".into(),
            },
        ];
        assemble(&sys, &plan(RootMode::ReadOnly, mounts)).unwrap();
        let calls = sys.calls();
        assert!(calls.contains(&Call::WriteFile {
            path: "/s/files/passwd".into(),
            content: "me:x:1000:1000::/home/me:/bin/sh\n".into(),
        }));
        assert!(calls.contains(&Call::CreateDir {
            path: "/s/dirs/tmp".into(),
            all: true,
        }));
        assert!(calls.contains(&Call::Symlink {
            target: "/proc/self/fd".into(),
            link: "/s/root/dev/fd".into(),
        }));
        assert_eq!(
            sys.mounts()[1..],
            [
                bind_call("/s/files/passwd", "/s/root/etc/passwd", false),
                bind_call("/s/dirs/tmp", "/s/root/tmp", false),
                mount("tmpfs", "/s/root/dev", "nosuid,nodev", "mode=755,size=1m"),
                mount(
                    "devpts",
                    "/s/root/dev/pts",
                    "nosuid,noexec",
                    "newinstance,ptmxmode=0666,mode=0620"
                ),
                remount("/s/root"),
            ]
        );
    }

    #[test]
    fn a_read_only_session_file_is_remounted_read_only() {
        let sys = Recorder::new();
        let mounts = vec![Mount::SessionFile {
            name: "resolv.conf".into(),
            content: "nameserver 10.0.0.2\n".into(),
            dst: "/etc/resolv.conf".into(),
            readonly: true,
        }];
        assemble(&sys, &plan(RootMode::WritableTmpfs, mounts)).unwrap();
        assert!(sys.calls().contains(&Call::EnsureInRoot {
            path: "/etc/resolv.conf".into(),
            file: true
        }));
        assert_eq!(
            sys.mounts()[1..],
            [
                bind_call("/s/files/resolv.conf", "/s/root/etc/resolv.conf", false),
                remount("/s/root/etc/resolv.conf"),
            ]
        );
    }

    #[test]
    fn allow_setuid_leaves_nosuid_off_the_root() {
        let sys = Recorder::new();
        let mut p = plan(RootMode::ReadOnly, vec![]);
        p.allow_setuid = true;
        assemble(&sys, &p).unwrap();
        assert_eq!(
            sys.mounts(),
            [
                mount("overlay", "/s/root", "nodev", ROOT_OVERLAY),
                Call::Remount {
                    dst: "/s/root".into(),
                    readonly: true,
                    nosuid: false,
                },
            ]
        );
    }

    #[test]
    fn an_existing_link_is_kept() {
        let sys = Recorder::new();
        let link = Call::Symlink {
            target: "pts/ptmx".into(),
            link: "/s/root/dev/ptmx".into(),
        };
        sys.fail(link, Errno::EXIST);
        let mounts = vec![Mount::Symlink {
            target: "pts/ptmx".into(),
            at: "/dev/ptmx".into(),
        }];
        assemble(&sys, &plan(RootMode::ReadOnly, mounts)).unwrap();
    }
}
