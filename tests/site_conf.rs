//! The site's configuration end to end: each directive of `vessel.conf`
//! that changes a run, the drop-in reading of an Apptainer installation's
//! `apptainer.conf` and `ecl.toml`, and bad configuration files. The
//! configuration is one only root or the owner of the installation may
//! point Vessel at (`VESSEL_CONF_DIR`): the runs are as the test user with
//! a copy of Vessel that user owns, or as root. Nothing is written to the
//! real `/etc`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;

/// A scratch site: `root/etc/vessel` (the configuration directory the runs
/// are pointed at) and `root/etc/apptainer` beside it; a Vessel the test
/// user owns; a working directory of the user's.
struct Site {
    root: tempfile::TempDir,
    work: tempfile::TempDir,
    _install: tempfile::TempDir,
    own_vessel: PathBuf,
    user: TestUser,
}

impl Site {
    fn new() -> Site {
        let user = test_user();
        let root = tempfile::tempdir().unwrap();
        for d in ["etc/vessel", "etc/apptainer", "etc/singularity"] {
            std::fs::create_dir_all(root.path().join(d)).unwrap();
        }
        // The user must be able to read the configuration.
        let mut perms = std::fs::metadata(root.path()).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(root.path(), perms).unwrap();
        let (install, own_vessel) = user_owned_vessel(&user);
        Site {
            root,
            work: user_dir(),
            _install: install,
            own_vessel,
            user,
        }
    }

    fn conf_dir(&self) -> PathBuf {
        self.root.path().join("etc/vessel")
    }

    /// Writes `etc/vessel/vessel.conf`.
    fn vessel_conf(&self, text: &str) -> PathBuf {
        let path = self.conf_dir().join("vessel.conf");
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `vessel ARGS` as the test user, with its own Vessel pointed at the site.
    fn run(&self, args: &[&str]) -> Output {
        self.run_program(&self.own_vessel, args)
    }

    fn run_program(&self, program: &Path, args: &[&str]) -> Output {
        let dir = self.conf_dir();
        let env = [("VESSEL_CONF_DIR", dir.to_str().unwrap())];
        as_user(&self.user, program, args, &env, self.work.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// `exec busybox sh -c SCRIPT` with `flags` before the image
    /// (`--debug` first, as the global flag it is).
    fn sh(&self, flags: &[&str], script: &str) -> Output {
        let image = busybox();
        let debug = flags.contains(&"--debug");
        let mut args = if debug {
            vec!["--debug", "exec"]
        } else {
            vec!["exec"]
        };
        args.extend(flags.iter().filter(|f| **f != "--debug"));
        args.extend([image.to_str().unwrap(), "sh", "-c", script]);
        self.run(&args)
    }

    /// [`Site::sh`], which must succeed: its output.
    fn sh_ok(&self, flags: &[&str], script: &str) -> String {
        assert_ok(&self.sh(flags, script), format_args!("{flags:?} {script}"))
    }

    /// The container's mount points, under `vessel.conf` = `conf`.
    fn mount_points(&self, conf: &str) -> Vec<String> {
        self.vessel_conf(conf);
        self.sh_ok(&[], "cut -d' ' -f2 /proc/self/mounts")
            .lines()
            .map(String::from)
            .collect()
    }
}

#[test]
fn bind_path_appears_and_a_missing_source_is_skipped_with_a_warning() {
    let site = Site::new();
    let data = user_dir();
    std::fs::write(data.path().join("hello"), "site data\n").unwrap();
    give_to_test_user(&data.path().join("hello"));
    site.vessel_conf(&format!(
        "bind path = {}:/mnt/sitedata\nbind path = /nonexistent-site-dir\n",
        data.path().display()
    ));
    let out = site.sh(&[], "cat /mnt/sitedata/hello");
    let err = stderr(&out);
    assert_eq!(assert_ok(&out, "bind path"), "site data\n");
    assert!(
        err.contains("WARNING")
            && err.contains("bind path = /nonexistent-site-dir")
            && err.contains("doesn't exist: not bound"),
        "{err}"
    );
    // --contain leaves the site's binds out, as Apptainer does.
    let out = site.sh(&["--contain"], "test -e /mnt/sitedata/hello || echo absent");
    assert_eq!(assert_ok(&out, "--contain"), "absent\n");
    // --no-mount names one by its destination.
    let out = site.sh(
        &["--no-mount", "/mnt/sitedata"],
        "test -e /mnt/sitedata/hello || echo absent",
    );
    assert_eq!(assert_ok(&out, "--no-mount"), "absent\n");
}

#[test]
fn default_mounts_follow_the_site() {
    let site = Site::new();
    let home = site.user.home.display().to_string();
    let has = |points: &[String], p: &str| points.iter().any(|m| m == p);
    let defaults = site.mount_points("");
    for p in [
        "/proc",
        "/sys",
        "/dev",
        "/dev/pts",
        "/tmp",
        "/var/tmp",
        home.as_str(),
    ] {
        assert!(has(&defaults, p), "{p} missing from {defaults:?}");
    }
    let points = site.mount_points("mount home = no\nmount tmp = no\nmount sys = no\n");
    for p in ["/tmp", "/var/tmp", "/sys", home.as_str()] {
        assert!(!has(&points, p), "{p} in {points:?}");
    }
    assert!(has(&points, "/proc"));
    // A minimal /dev, without devpts when the site says so.
    let points = site.mount_points("mount dev = minimal\nmount devpts = no\n");
    assert!(
        has(&points, "/dev/null") && has(&points, "/dev/shm"),
        "{points:?}"
    );
    assert!(!has(&points, "/dev/pts"), "{points:?}");
    // The image's own /dev (busybox's is empty, so its action script
    // fails without /dev/null, as under Apptainer): nothing is mounted there.
    site.vessel_conf("mount dev = no\n");
    let err = stderr(&site.sh(&["--debug"], "true"));
    assert!(err.contains("mount: bind /proc"), "{err}");
    assert!(!err.contains(" on /dev"), "{err}");
    // No /proc: the mount table itself is gone.
    site.vessel_conf("mount proc = no\n");
    assert_eq!(site.sh_ok(&[], "ls /proc | wc -l").trim(), "0");
}

#[test]
fn identity_files_and_resolv_conf_follow_the_site() {
    let site = Site::new();
    let name = site.user.name.clone();
    site.vessel_conf("");
    let passwd = site.sh_ok(&[], "cat /etc/passwd /etc/group");
    assert!(passwd.contains(&format!("{name}:")), "{passwd}");
    site.vessel_conf("config passwd = no\nconfig group = no\nconfig resolv_conf = no\n");
    let passwd = site.sh_ok(&[], "cat /etc/passwd /etc/group");
    assert!(!passwd.contains(&format!("{name}:")), "{passwd}");
    let points = site.sh_ok(&[], "cut -d' ' -f2 /proc/self/mounts");
    assert!(!points.lines().any(|l| l == "/etc/resolv.conf"), "{points}");
}

#[test]
fn user_bind_control_no_refuses_the_users_binds_by_name() {
    let site = Site::new();
    site.vessel_conf("user bind control = no\n");
    let image = busybox();
    let image = image.to_str().unwrap();
    for (args, flag) in [
        (vec!["exec", "-B", "/tmp:/mnt", image, "true"], "-B/--bind"),
        (
            vec![
                "exec",
                "--mount",
                "type=bind,src=/tmp,dst=/mnt",
                image,
                "true",
            ],
            "--mount",
        ),
        (vec!["exec", "--scratch", "/s", image, "true"], "--scratch"),
    ] {
        assert_fatal(
            &site.run(&args),
            &[
                flag,
                "the site's",
                "does not allow user binds (user bind control = no)",
            ],
        );
    }
    // Without them, the container runs (and the working directory is not
    // bound: it is one of the user's binds).
    let cwd = site.work.path().display().to_string();
    let points = site.sh_ok(&[], "cut -d' ' -f2 /proc/self/mounts");
    assert!(!points.lines().any(|l| l == cwd), "{points}");
}

#[test]
fn image_kinds_and_places_the_site_allows() {
    let site = Site::new();
    let sandbox = user_dir();
    site.vessel_conf("allow container dir = no\n");
    assert_fatal(
        &site.run(&["exec", sandbox.path().to_str().unwrap(), "true"]),
        &["does not allow sandbox directories (allow container dir = no)"],
    );
    site.vessel_conf("allow container sif = no\n");
    assert_fatal(
        &site.sh(&[], "true"),
        &["does not allow SIF images (allow container sif = no)"],
    );
    // A bare SquashFS image: busybox's root file system.
    let sqfs_dir = user_dir();
    let sqfs = sqfs_dir.path().join("busybox.sqfs");
    let dumped = run(&["sif", "dump", "4", busybox().to_str().unwrap()]);
    assert!(dumped.status.success(), "{}", stderr(&dumped));
    std::fs::write(&sqfs, &dumped.stdout).unwrap();
    give_to_test_user(&sqfs);
    let run_sqfs = || site.run(&["exec", sqfs.to_str().unwrap(), "echo", "ran"]);
    assert_eq!(assert_ok(&run_sqfs(), "squashfs"), "ran\n");
    site.vessel_conf("allow container squashfs = no\n");
    assert_fatal(
        &run_sqfs(),
        &["does not allow SquashFS images (allow container squashfs = no)"],
    );
    // Paths match whole components (Apptainer 1.5.1's fix).
    let images = user_dir();
    let dir = std::fs::canonicalize(images.path()).unwrap();
    let image = dir.join("busybox.sif");
    std::fs::copy(busybox(), &image).unwrap();
    chown_tree(&image, site.user.uid, site.user.gid);
    let run_image = || site.run(&["exec", image.to_str().unwrap(), "echo", "ran"]);
    let prefix = dir.display().to_string();
    let prefix = &prefix[..prefix.len() - 2];
    site.vessel_conf(&format!("limit container paths = {prefix}\n"));
    assert_fatal(
        &run_image(),
        &["does not allow images in", "limit container paths = "],
    );
    site.vessel_conf(&format!(
        "limit container paths = /nonexistent, {}\n",
        dir.display()
    ));
    assert_eq!(assert_ok(&run_image(), "limit container paths"), "ran\n");
    // Owners and groups: the image is the user's.
    site.vessel_conf("limit container owners = root\n");
    assert_fatal(
        &run_image(),
        &[
            &format!("does not allow images owned by {}", site.user.name),
            "limit container owners = root",
        ],
    );
    site.vessel_conf(&format!(
        "limit container owners = root, {}\n",
        site.user.name
    ));
    assert_eq!(assert_ok(&run_image(), "limit container owners"), "ran\n");
}

#[test]
fn namespaces_the_site_does_not_allow_are_left_out_with_a_warning() {
    let site = Site::new();
    site.vessel_conf("allow pid ns = no\nallow uts ns = no\nallow ipc ns = no\n");
    // As Apptainer: the container runs, in the host's namespaces; Vessel
    // says which the site left out.
    let host_ns = |ns: &str| std::fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
    for (flags, ns, needle) in [
        (vec!["--pid"], "pid", "--pid: the site's"),
        (
            vec!["--containall"],
            "pid",
            "PID namespaces (allow pid ns = no)",
        ),
        (vec!["--ipc"], "ipc", "IPC namespaces (allow ipc ns = no)"),
        (vec!["--hostname", "h"], "uts", "(allow uts ns = no)"),
    ] {
        let out = site.sh(&flags, &format!("readlink /proc/self/ns/{ns}"));
        let err = stderr(&out);
        let inside = assert_ok(&out, flags.join(" "));
        assert_eq!(inside.trim(), host_ns(ns).to_string_lossy(), "{flags:?}");
        assert!(err.contains("WARNING:") && err.contains(needle), "{err}");
    }
    assert_eq!(site.sh_ok(&[], "echo ran"), "ran\n");
    site.vessel_conf("allow user ns = no\n");
    assert_fatal(
        &site.sh(&[], "true"),
        &["does not allow user namespaces", "(allow user ns = no)"],
    );
}

#[test]
fn sessiondir_max_size_bounds_the_writable_tmpfs() {
    let site = Site::new();
    let write = |mib: u32| {
        site.sh(
            &["--writable-tmpfs"],
            &format!("dd if=/dev/zero of=/big bs=1M count={mib} 2>/dev/null && echo written"),
        )
    };
    site.vessel_conf("");
    assert_eq!(assert_ok(&write(40), "default"), "written\n");
    site.vessel_conf("sessiondir max size = 8\n");
    let out = write(40);
    assert!(!stdout(&out).contains("written"), "{}", stdout(&out));
    assert_eq!(assert_ok(&write(2), "small"), "written\n");
    assert_fatal(
        &site.sh(&["--writable-tmpfs", "--writable-tmpfs-size", "16"], "true"),
        &[
            "--writable-tmpfs-size 16",
            "allows at most 8 MiB (sessiondir max size = 8)",
        ],
    );
}

#[test]
fn overlay_disabled_refuses_overlays_by_name() {
    let site = Site::new();
    site.vessel_conf("enable overlay = no\n");
    let upper = user_dir();
    assert_fatal(
        &site.sh(&["--overlay", upper.path().to_str().unwrap()], "true"),
        &["--overlay", "does not allow overlays (enable overlay = no)"],
    );
    assert_fatal(
        &site.sh(&["--writable-tmpfs"], "true"),
        &["--writable-tmpfs", "(enable overlay = no)"],
    );
    assert_eq!(site.sh_ok(&[], "echo ran"), "ran\n");
    // Plain runs and binds still work, on an underlay.
    let data = user_dir();
    std::fs::write(data.path().join("in.txt"), "bound\n").unwrap();
    let bind = format!("{}:/opt/data/deep", data.path().display());
    let out = site.sh(
        &["--debug", "-B", &bind],
        "cat /opt/data/deep/in.txt; ls -d /bin /etc/passwd $HOME; touch /new 2>/dev/null || echo read-only",
    );
    let said = assert_ok(&out, "underlay");
    assert!(
        said.starts_with("bound\n") && said.ends_with("read-only\n"),
        "{said}"
    );
    assert!(
        stderr(&out).contains("root: an underlay of"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn overlay_driver_puts_writable_layers_through_fuse_overlayfs() {
    let site = Site::new();
    site.vessel_conf("enable overlay = driver\n");
    let out = site.sh(
        &["--debug", "--writable-tmpfs"],
        "rm /bin/ls && echo removed; echo new > /etc/new && cat /etc/new",
    );
    assert_eq!(assert_ok(&out, "driver"), "removed\nnew\n");
    assert!(
        stderr(&out).contains("an overlay through fuse-overlayfs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn always_use_nv_asks_for_the_driver_unless_no_nv() {
    let site = Site::new();
    site.vessel_conf("always use nv = yes\n");
    // On a host without NVIDIA's driver, --nv says so; with it, the
    // driver's libraries are on the container's library path.
    let out = site.sh(&[], "echo $LD_LIBRARY_PATH");
    let (err, path) = (stderr(&out), assert_ok(&out, "always use nv"));
    assert!(
        err.contains("--nv: no NVIDIA driver") || path.contains("/.singularity.d/libs"),
        "{err}{path}"
    );
    // With `use nvidia-container-cli`, --nv is --nvccli: NVIDIA's tool is
    // needed (this host has none).
    site.vessel_conf("always use nv = yes\nuse nvidia-container-cli = yes\n");
    if !std::path::Path::new("/usr/bin/nvidia-container-cli").exists() {
        assert_fatal(
            &site.sh(&[], "true"),
            &["--nvccli needs nvidia-container-cli"],
        );
    }
    let out = site.sh(&["--no-nv"], "echo $LD_LIBRARY_PATH");
    let err = stderr(&out);
    assert_ok(&out, "--no-nv");
    assert!(!err.contains("NVIDIA"), "{err}");
}

#[test]
fn memory_fs_type_ramfs_holds_the_session() {
    let site = Site::new();
    site.vessel_conf("memory fs type = ramfs\n");
    let out = site.sh(&["--debug"], "echo ran");
    assert_eq!(assert_ok(&out, "ramfs"), "ran\n");
    assert!(stderr(&out).contains("mount: ramfs on"), "{}", stderr(&out));
}

#[test]
fn root_default_capabilities() {
    if !running_as_root() {
        skip("root's capabilities need root");
        return;
    }
    let site = Site::new();
    let dir = site.conf_dir();
    let caps = |conf: &str, flags: &[&str]| {
        site.vessel_conf(conf);
        let image = busybox();
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend([
            image.to_str().unwrap(),
            "grep",
            "CapEff",
            "/proc/self/status",
        ]);
        let out = vessel()
            .env("VESSEL_CONF_DIR", &dir)
            .args(&args)
            .current_dir(site.work.path())
            .output()
            .unwrap();
        assert_ok(&out, format_args!("{conf} {flags:?}"))
    };
    assert!(!caps("", &[]).contains("0000000000000000"));
    assert!(caps("root default capabilities = no\n", &[]).contains("0000000000000000"));
    assert!(
        !caps("root default capabilities = no\n", &["--keep-privs"]).contains("0000000000000000")
    );
}

#[test]
fn an_apptainer_installation_configures_vessel_without_a_vessel_conf() {
    let site = Site::new();
    let data = user_dir();
    std::fs::write(data.path().join("hello"), "from apptainer.conf\n").unwrap();
    give_to_test_user(&data.path().join("hello"));
    let apptainer_conf = site.root.path().join("etc/apptainer/apptainer.conf");
    std::fs::write(
        &apptainer_conf,
        format!(
            "# APPTAINER.CONF\nallow setuid = yes\nmax loop devices = 256\nbind path = /etc/localtime\nbind path = /etc/hosts\nbind path = {}:/site\nmount home = no\n",
            data.path().display()
        ),
    )
    .unwrap();
    let out = site.sh(&["--debug"], "cat /site/hello");
    assert_eq!(assert_ok(&out, "drop-in"), "from apptainer.conf\n");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "site configuration: read {}",
            apptainer_conf.display()
        )),
        "{err}"
    );
    // The singularity persona reads singularity.conf.
    let singularity = site._install.path().join("singularity");
    std::os::unix::fs::symlink(&site.own_vessel, &singularity).unwrap();
    std::fs::write(
        site.root.path().join("etc/singularity/singularity.conf"),
        "mount tmp = no\n",
    )
    .unwrap();
    let image = busybox();
    let out = site.run_program(
        &singularity,
        &[
            "exec",
            image.to_str().unwrap(),
            "cut",
            "-d ",
            "-f2",
            "/proc/self/mounts",
        ],
    );
    let points = assert_ok(&out, "singularity persona");
    assert!(!points.lines().any(|l| l == "/tmp"), "{points}");
    assert!(!points.lines().any(|l| l == "/site"), "{points}");
    // ecl.toml: active, with a group for another directory only, so this
    // image belongs to no group and does not run.
    std::fs::write(
        site.root.path().join("etc/apptainer/ecl.toml"),
        "activated = true\n[[execgroup]]\n  tagname = \"site\"\n  mode = \"whitelist\"\n  dirpath = \"/nonexistent/images\"\n  keyfp = [\"12045C8C0B1004D058DE4BEDA20C27EE7FF7BA84\"]\n",
    )
    .unwrap();
    let out = site.sh(&[], "echo ran");
    assert!(!stdout(&out).contains("ran"));
    assert_failed(&out, &["ecl.toml does not allow this image to run"]);
    // A vessel.conf, once there, is the only file read.
    site.vessel_conf("");
    let out = site.sh(&["--debug"], "test -e /site/hello || echo absent");
    assert_eq!(assert_ok(&out, "vessel.conf"), "absent\n");
}

#[test]
fn bad_configuration_files() {
    let site = Site::new();
    let conf = site.vessel_conf("# site\nmount hom = no\n");
    let out = site.sh(&[], "echo ran");
    assert_eq!(assert_ok(&out, "typo"), "ran\n");
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "WARNING: {}, line 2: unknown directive `mount hom`: ignored (did you mean `mount home`?)",
            conf.display()
        )) || err.contains(&format!("{}, line 2: unknown directive `mount hom`", conf.display())),
        "{err}"
    );
    site.vessel_conf("bind path = /etc/hosts\nsessiondir max size = 0\n");
    let out = site.sh(&[], "echo ran");
    assert!(!stdout(&out).contains("ran"));
    assert_fatal(
        &out,
        &[
            &format!(
                "{}, line 2: sessiondir max size: `0` is not allowed",
                conf.display()
            ),
            "a whole number from 1",
        ],
    );
    site.vessel_conf("mount dev = sometimes\n");
    assert_fatal(
        &site.sh(&[], "true"),
        &["line 1: mount dev: `sometimes` is not allowed: use yes, no, minimal"],
    );
}

#[test]
fn mksquashfs_procs_and_mem_reach_mksquashfs() {
    let site = Site::new();
    site.vessel_conf("mksquashfs procs = 2\nmksquashfs mem = 256M\n");
    let scratch = tempfile::tempdir().unwrap();
    let sandbox = scratch.path().join("sandbox");
    std::fs::create_dir_all(&sandbox).unwrap();
    std::fs::write(sandbox.join("hello"), "hi\n").unwrap();
    // A mksquashfs first on PATH that records its arguments.
    let wrap = scratch.path().join("bin");
    std::fs::create_dir_all(&wrap).unwrap();
    let log = scratch.path().join("args");
    let script = wrap.join("mksquashfs");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\nexec /usr/bin/mksquashfs \"$@\"\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    if !Path::new("/usr/bin/mksquashfs").exists() {
        skip("no /usr/bin/mksquashfs to wrap");
        return;
    }
    // The wrapper, then the system's programs.
    let path = format!("{}:/usr/local/bin:/usr/bin:/bin", wrap.display());
    let out = vessel()
        .env("VESSEL_CONF_DIR", site.conf_dir())
        .env("PATH", &path)
        .args(["build"])
        .arg(scratch.path().join("out.sif"))
        .arg(&sandbox)
        .output()
        .unwrap();
    assert_ok(&out, "build");
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(args.contains("-processors 2 -mem 256M"), "{args}");
    // The user's own options win.
    let out = vessel()
        .env("VESSEL_CONF_DIR", site.conf_dir())
        .env("PATH", &path)
        .args(["build", "--force", "--mksquashfs-args", "-processors 1"])
        .arg(scratch.path().join("out.sif"))
        .arg(&sandbox)
        .output()
        .unwrap();
    assert_ok(&out, "build --mksquashfs-args");
    let args = std::fs::read_to_string(&log).unwrap();
    assert!(
        args.contains("-mem 256M -processors 1") && !args.contains("-processors 2"),
        "{args}"
    );
}

#[test]
fn mount_hostfs_binds_the_hosts_file_systems() {
    if !running_as_root() {
        skip("a host file system to find needs root to mount (in a private mount namespace)");
        return;
    }
    let site = Site::new();
    // Outside /tmp, home and the working directory, whose binds bring the
    // mounts below them (a user namespace cannot leave them out).
    let dir = "/srv";
    if !Path::new(dir).is_dir() {
        skip("no /srv to mount a host file system on");
        return;
    }
    let image = busybox();
    // A tmpfs mounted on the host's /srv (in a mount namespace of this
    // test's own, so that nothing is left behind), then the run as the user.
    let run = |conf: &str| {
        site.vessel_conf(conf);
        let script = format!(
            "mount -t tmpfs hostfs-test {dir} && echo host-fs > {dir}/f && chmod 755 {dir} && exec \"$@\""
        );
        let conf_dir = site.conf_dir();
        std::process::Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script, "sh"])
            .arg("setpriv")
            .arg(format!("--reuid={}", site.user.uid))
            .arg(format!("--regid={}", site.user.gid))
            .args(["--init-groups", "env", "-i"])
            .arg(format!("HOME={}", site.user.home.display()))
            .arg("PATH=/usr/local/bin:/usr/bin:/bin")
            .arg(format!("VESSEL_CONF_DIR={}", conf_dir.display()))
            .arg(&site.own_vessel)
            .args(["exec", image.to_str().unwrap(), "sh", "-c"])
            .arg(format!("cat {dir}/f || echo absent"))
            .current_dir(site.work.path())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert_eq!(assert_ok(&run(""), "default"), "absent\n");
    assert_eq!(
        assert_ok(&run("mount hostfs = yes\n"), "mount hostfs"),
        "host-fs\n"
    );
}
