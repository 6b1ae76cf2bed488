//! Multi-user safety: another user of the node (the attacker, `vattack`)
//! prepares what a victim's run meets (directories in shared places,
//! planted links, swapped images, hostile definitions), and the victim's
//! runs must be unaffected. Each test is deterministic; the race tests flip
//! a path in a tight loop while the victim starts 50 containers.

// The tests read their own settings (VESSEL_TEST_*, VESSEL_FIXTURES, CI),
// not Vessel's variables, so not through vessel-config's registry.
#![allow(clippy::disallowed_methods)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;

/// What the victim's container prints: whether the attacker's tree runs.
const PROBE: &str = "test -e /pwned && echo PWNED || echo clean";

/// A shell command as `user`.
fn shell_as(user: &TestUser, script: &str) -> Command {
    as_user(
        user,
        Path::new("/bin/sh"),
        &["-c", script],
        &[],
        Path::new("/"),
    )
}

fn sh_ok(user: &TestUser, script: &str) {
    let out = shell_as(user, script).output().unwrap();
    assert!(out.status.success(), "{script}: {}", stderr(&out));
}

/// The busybox image's tree with `/pwned` added: the attacker's.
fn evil_tree(into: &Path) -> PathBuf {
    let root = into.join("evil");
    unsquash(&busybox(), &root, &[]);
    std::fs::write(root.join("pwned"), "the attacker's tree\n").unwrap();
    root
}

/// A SIF of `tree`, made as `vessel sif new` + `sif add` do for CI's image.
fn sif_of(tree: &Path, image: &Path) {
    let sqfs = image.with_extension("sqfs");
    let out = Command::new("mksquashfs")
        .arg(tree)
        .arg(&sqfs)
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    sif_from_squashfs(&sqfs, image);
    std::fs::remove_file(sqfs).unwrap();
}

/// The SHA-256 of a SIF's primary partition: the extract cache's key.
fn partition_digest(image: &Path) -> String {
    let out = run(&["sif", "list", image.to_str().unwrap()]);
    let list = stdout(&out);
    let line = list.lines().find(|l| l.contains("*System")).unwrap();
    let range = line.split('|').nth(3).unwrap().trim();
    let (start, end) = range.split_once('-').unwrap();
    let (start, end): (u64, u64) = (start.trim().parse().unwrap(), end.trim().parse().unwrap());
    let script = format!(
        "tail -c +{} {} | head -c {} | sha256sum",
        start + 1,
        image.display(),
        end - start
    );
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

struct Flipper(Child);

impl Drop for Flipper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `script` as `user` in the background until dropped.
fn flip(user: &TestUser, script: &str) -> Flipper {
    Flipper(
        shell_as(user, script)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

/// A copy of the image the victim can read.
fn readable_copy(dir: &Path) -> PathBuf {
    let img = dir.join("app.sif");
    std::fs::copy(busybox(), &img).unwrap();
    img
}

#[test]
fn an_extract_cache_another_user_made_is_never_used() {
    let Some(attacker) = attacker() else { return };
    let victim = named_user(&std::env::var("VESSEL_TEST_VICTIM").unwrap_or("vvictim".into()));
    let work = user_dir();
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let img = readable_copy(work.path());
    let digest = partition_digest(&img);

    // The attacker takes the victim's default place in /var/tmp, open to
    // all, with the image's entry already "extracted": their own tree.
    let taken = PathBuf::from(format!("/var/tmp/vessel-{}", victim.uid));
    let _ = std::fs::remove_dir_all(&taken);
    let _ = std::fs::remove_dir_all(victim.home.join(".apptainer/cache/vessel/extract"));
    let evil = evil_tree(work.path());
    chown_tree(&evil, attacker.uid, attacker.gid);
    sh_ok(
        &attacker,
        &format!(
            "mkdir -p {t}/extract/{digest} {t}/real/{digest} && cp -a {e} {t}/extract/{digest}/root && cp -a {e} {t}/real/{digest}/root && chmod -R 1777 {t}",
            t = taken.display(),
            e = evil.display()
        ),
    );

    // The victim's run of the image, which must not run the attacker's tree.
    let probe = || {
        run_as(
            &victim,
            &[
                "exec",
                "--unsquash",
                img.to_str().unwrap(),
                "/bin/sh",
                "-c",
                PROBE,
            ],
            &[],
            work.path(),
        )
    };
    let out = probe();
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert_eq!(stdout(&out), "clean\n", "{err}");
    let warnings: Vec<_> = err.lines().filter(|l| l.starts_with("WARNING:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains(&taken.display().to_string()), "{err}");
    assert!(
        warnings[0].contains(&format!("belongs to uid {}", attacker.uid)),
        "{err}"
    );
    assert!(
        warnings[0].contains(".apptainer/cache/vessel/extract"),
        "{err}"
    );

    // A directory the user names is used or refused, never replaced.
    let named = format!("VESSEL_EXTRACT_DIR={}/extract", taken.display());
    let out = run_as(
        &victim,
        &["exec", "--unsquash", img.to_str().unwrap(), "true"],
        &[named.split_once('=').unwrap()],
        work.path(),
    );
    assert_fatal(&out, &["is not safe to use", "set VESSEL_EXTRACT_DIR"]);

    // The race: the attacker flips `extract` between their directory and a
    // link to another one of theirs while the victim starts containers.
    let _flipper = flip(
        &attacker,
        &format!(
            "cd {} && while :; do mv -T extract held; ln -sfn real extract; rm -f extract; mv -T held extract; done",
            taken.display()
        ),
    );
    let mut wrong = 0;
    for _ in 0..50 {
        let out = probe();
        assert!(out.status.success(), "{}", stderr(&out));
        if stdout(&out) != "clean\n" {
            wrong += 1;
        }
    }
    assert_eq!(wrong, 0, "runs of the attacker's tree");
    drop(_flipper);
    let _ = std::fs::remove_dir_all(&taken);
}

#[test]
fn files_destinations_stay_inside_the_image() {
    // As root, where an escape would write anywhere on the host.
    skip_unless!(
        running_as_root(),
        "the build escape test runs as root (where an escape would write anywhere)"
    );
    let work = tempfile::tempdir().unwrap();
    let host_dir = work.path().join("host");
    std::fs::create_dir(&host_dir).unwrap();
    // A base sandbox whose absolute link names a host directory.
    let base = work.path().join("base");
    unsquash(&busybox(), &base, &[]);
    std::os::unix::fs::symlink(&host_dir, base.join("evil")).unwrap();
    // Links to a host file, at a destination and inside a tree copied over.
    let host_file = work.path().join("victim-file");
    std::fs::write(&host_file, "orig\n").unwrap();
    std::os::unix::fs::symlink(&host_file, base.join("conf")).unwrap();
    std::fs::create_dir_all(base.join("opt")).unwrap();
    std::os::unix::fs::symlink(&host_file, base.join("opt/conf")).unwrap();
    // The metadata directory itself a link to a host directory.
    let host_meta = work.path().join("meta");
    std::fs::create_dir(&host_meta).unwrap();
    std::fs::remove_dir_all(base.join(".singularity.d")).unwrap();
    std::os::unix::fs::symlink(&host_meta, base.join(".singularity.d")).unwrap();
    let payload = work.path().join("payload");
    std::fs::write(&payload, "payload\n").unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("opt")).unwrap();
    std::fs::write(tree.join("opt/conf"), "tree\n").unwrap();
    let def = work.path().join("escape.def");
    std::fs::write(
        &def,
        format!(
            "Bootstrap: localimage\nFrom: {}\n\n%files\n    {p} /../../../{h}/dotdot\n    {p} /evil/through-link\n    {p} /evil\n    {p} /conf\n    {t}/opt /\n\n%runscript\n    echo run\n\n%labels\n    a b\n",
            base.display(),
            p = payload.display(),
            t = tree.display(),
            h = host_dir.strip_prefix("/").unwrap().display()
        ),
    )
    .unwrap();
    let out_img = work.path().join("escape.sif");
    let out = vessel()
        .args(["build", out_img.to_str().unwrap(), def.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let leaked: Vec<_> = std::fs::read_dir(&host_dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(leaked.is_empty(), "written on the host: {leaked:?}");
    assert_eq!(std::fs::read_to_string(&host_file).unwrap(), "orig\n");
    assert!(
        std::fs::read_dir(&host_meta).unwrap().next().is_none(),
        "metadata written on the host"
    );
    // Inside, each landed where the container sees the path.
    let unpacked = work.path().join("unpacked");
    unsquash(&out_img, &unpacked, &[]);
    let inside = unpacked.join(host_dir.strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read_to_string(unpacked.join("conf")).unwrap(),
        "payload\n"
    );
    assert_eq!(
        std::fs::read_to_string(unpacked.join("opt/conf")).unwrap(),
        "tree\n"
    );
    let meta = unpacked.join(host_meta.strip_prefix("/").unwrap());
    assert!(meta.join("runscript").is_file() && meta.join("labels.json").is_file());
    for name in ["dotdot", "through-link", "payload"] {
        assert_eq!(
            std::fs::read_to_string(inside.join(name)).unwrap(),
            "payload\n",
            "{name}"
        );
    }
}

#[test]
fn execution_control_runs_the_file_it_checked() {
    let Some(attacker) = attacker() else { return };
    let user = test_user();
    let work = tempfile::tempdir().unwrap();
    let keys = work.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let with_keys = |args: &[&str]| {
        let out = vessel()
            .env("APPTAINER_KEYSDIR", &keys)
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        stdout(&out)
    };
    let fp = new_key(&with_keys, "Site Admin");

    // The attacker's directory, which the site's policy lists: signed and
    // unsigned images take turns under one name.
    let images = user_dir();
    chown_tree(images.path(), attacker.uid, attacker.gid);
    std::fs::set_permissions(
        images.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let dir = std::fs::canonicalize(images.path()).unwrap();
    let good = dir.join("good.sif");
    unsigned_copy(&busybox(), &good);
    with_keys(&["sign", good.to_str().unwrap()]);
    let evil = dir.join("evil.sif");
    sif_of(&evil_tree(work.path()), &evil);
    chown_tree(&dir, attacker.uid, attacker.gid);

    let conf = work.path().join("conf");
    std::fs::create_dir(&conf).unwrap();
    let public = conf.join("allowed.asc");
    with_keys(&["key", "export", &fp, public.to_str().unwrap()]);
    let out = vessel()
        .env("VESSEL_CONF_DIR", &conf)
        .args(["key", "import", "--global", public.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::write(
        conf.join("vessel.conf"),
        format!(
            "execution control = yes\nexecution group = whitelist {} {fp}\n",
            dir.display()
        ),
    )
    .unwrap();
    for p in [work.path(), conf.as_path()] {
        std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    // The victim's own copy of Vessel, which may be pointed at a site
    // configuration.
    let (install, own_vessel) = user_owned_vessel(&user);
    let conf_env = [("VESSEL_CONF_DIR", conf.to_str().unwrap())];
    let app = dir.join("app.sif");
    let exec = || {
        as_user(
            &user,
            &own_vessel,
            &["exec", app.to_str().unwrap(), "/bin/sh", "-c", PROBE],
            &conf_env,
            install.path(),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap()
    };
    sh_ok(
        &attacker,
        &format!("cd {} && ln -f evil.sif app.sif", dir.display()),
    );
    let refused = exec();
    assert_eq!(refused.status.code(), Some(255), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("no valid signature"),
        "{}",
        stderr(&refused)
    );
    sh_ok(
        &attacker,
        &format!("cd {} && ln -f good.sif app.sif", dir.display()),
    );
    let out = exec();
    assert_eq!(stdout(&out), "clean\n", "{}", stderr(&out));

    let _flipper = flip(
        &attacker,
        &format!(
            "cd {} && while :; do ln -f good.sif t1 && mv -f t1 app.sif; ln -f evil.sif t2 && mv -f t2 app.sif; done",
            dir.display()
        ),
    );
    let (mut ran, mut refused, mut wrong) = (0, 0, 0);
    for _ in 0..50 {
        let out = exec();
        match (out.status.code(), stdout(&out).as_str()) {
            (Some(0), "clean\n") => ran += 1,
            (Some(255), "") if stderr(&out).contains("execution control") => refused += 1,
            _ => {
                wrong += 1;
                eprintln!(
                    "unexpected run: {:?} {}{}",
                    out.status,
                    stdout(&out),
                    stderr(&out)
                );
            }
        }
    }
    eprintln!("50 runs under a flipping image: {ran} ran the signed image, {refused} refused");
    assert_eq!(wrong, 0);
}

#[test]
fn overlay_directories_of_other_users_are_refused() {
    let Some(attacker) = attacker() else { return };
    let victim = test_user();
    let work = user_dir();
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let img = readable_copy(work.path());
    // Shared, as /tmp is: both users make directories in it.
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )
    .unwrap();
    let touch_with_overlay = |overlay: &Path| {
        run_as(
            &victim,
            &[
                "exec",
                "--overlay",
                overlay.to_str().unwrap(),
                img.to_str().unwrap(),
                "touch",
                "/x",
            ],
            &[],
            work.path(),
        )
    };
    // The victim's home must stay as it is.
    let target = victim.home.join("overlay-target");
    let _ = std::fs::remove_dir_all(&target);

    // The attacker's directory, with `upper` leading into the victim's home.
    let theirs = work.path().join("theirs");
    sh_ok(
        &attacker,
        &format!(
            "mkdir -m 0777 {o} && ln -s {t} {o}/upper && ln -s {t} {o}/work",
            o = theirs.display(),
            t = target.display()
        ),
    );
    let out = touch_with_overlay(&theirs);
    assert_fatal(
        &out,
        &[
            "overlay",
            &format!("belongs to uid {}", attacker.uid),
            "of your own",
        ],
    );

    // The victim's own directory, but open to all: the attacker planted links.
    let open = work.path().join("open");
    sh_ok(&victim, &format!("mkdir -m 0777 {}", open.display()));
    sh_ok(
        &attacker,
        &format!(
            "ln -s {t} {o}/upper && ln -s {t} {o}/work",
            o = open.display(),
            t = target.display()
        ),
    );
    let out = touch_with_overlay(&open);
    assert_fatal(&out, &["overlay", "writable by other users"]);

    // Closed again, the planted links are still refused, not followed.
    sh_ok(&victim, &format!("chmod 0755 {}", open.display()));
    let out = touch_with_overlay(&open);
    assert_fatal(&out, &["overlay", "symbolic link"]);
    assert!(!target.exists(), "the victim's home was written");

    // The user's own directory works.
    let mine = work.path().join("mine");
    sh_ok(&victim, &format!("mkdir {}", mine.display()));
    let out = touch_with_overlay(&mine);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(mine.join("upper/x").exists());
}

#[test]
fn the_container_cannot_reach_the_host_through_the_monitor() {
    let user = test_user();
    let work = user_dir();
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let img = readable_copy(work.path());
    for flags in [&[][..], &["--fakeroot"][..]] {
        let mut args = vec!["exec"];
        args.extend_from_slice(flags);
        args.extend_from_slice(&[
            img.to_str().unwrap(),
            "/bin/sh",
            "-c",
            "ls /proc/$PPID/root/ >/dev/null 2>&1 && echo reached || echo denied",
        ]);
        let out = run_as(&user, &args, &[], work.path());
        assert_eq!(stdout(&out), "denied\n", "{flags:?}: {}", stderr(&out));
    }
}
