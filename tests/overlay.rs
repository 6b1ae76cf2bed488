//! Writable containers end to end, as the test user: changes to the
//! image's files under `--writable-tmpfs` and `--overlay` (directories,
//! ext3 images through `fuse2fs`, SquashFS images, a SIF's overlay
//! partition), with and without fake root, through the FUSE driver and
//! with `--unsquash`; persistence, read-only reuse, and bad input.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// The file operations users make on image files, each printing its name
/// when it worked.
const FILE_OPS: &str = "set -e
rm /etc/debian_version; echo rm
sed -i s/Debian/Changed/ /etc/issue; grep -q Changed /etc/issue; echo sed
mv /etc/host.conf /etc/host.conf.moved; echo mv
chmod 600 /etc/issue.net; echo chmod
truncate -s 0 /etc/motd; echo truncate
ln /etc/os-release /etc/os-release.link; echo link
mkdir /usr/share/new-dir; echo mkdir
rm -r /usr/share/doc; echo rm-r
echo added >> /etc/profile; echo append
";

const FILE_OPS_DONE: &str = "rm\nsed\nmv\nchmod\ntruncate\nlink\nmkdir\nrm-r\nappend\n";

fn debian_copy(dir: &Path) -> Option<PathBuf> {
    let debian = debian_sif()?;
    let copy = dir.join("debian.sif");
    std::fs::copy(debian, &copy).unwrap();
    give_to_test_user(&copy);
    Some(copy)
}

fn exec(dir: &Path, flags: &[&str], image: &Path, script: &str) -> Output {
    let mut args = vec!["exec"];
    args.extend(flags);
    args.extend([image.to_str().unwrap(), "sh", "-c", script]);
    user_run(dir, &args, &[])
}

#[test]
fn image_files_can_be_changed_in_a_writable_tmpfs_by_every_driver() {
    let dir = user_dir();
    let Some(image) = debian_copy(dir.path()) else {
        return;
    };
    for flags in [
        &["--writable-tmpfs"][..],
        &["--writable-tmpfs", "--unsquash"],
        &["--writable-tmpfs", "--fakeroot"],
        &["--writable-tmpfs", "--fakeroot", "--ignore-subuid"],
    ] {
        let out = exec(dir.path(), flags, &image, FILE_OPS);
        assert_eq!(
            assert_ok(&out, format_args!("{flags:?}")),
            FILE_OPS_DONE,
            "{flags:?}"
        );
    }
    // As real root, through the kernel's squashfs.
    if running_as_root() {
        let out = vessel()
            .args([
                "exec",
                "--writable-tmpfs",
                image.to_str().unwrap(),
                "sh",
                "-c",
                FILE_OPS,
            ])
            .output()
            .unwrap();
        assert_eq!(assert_ok(&out, "as root"), FILE_OPS_DONE);
    }
}

#[test]
fn root_only_files_stay_unreadable_but_can_be_replaced() {
    let dir = user_dir();
    let Some(image) = debian_copy(dir.path()) else {
        return;
    };
    let out = exec(
        dir.path(),
        &["--writable-tmpfs"],
        &image,
        "cat /etc/shadow >/dev/null 2>&1 && echo read || echo unreadable; rm /etc/shadow && echo removed",
    );
    assert_eq!(assert_ok(&out, "shadow"), "unreadable\nremoved\n");
    let out = exec(dir.path(), &["--fakeroot"], &image, "head -c4 /etc/shadow");
    assert_eq!(assert_ok(&out, "fake root reads it"), "root");
}

#[test]
fn overlay_directories_persist_and_are_read_back_from_upper() {
    let dir = user_dir();
    let Some(image) = debian_copy(dir.path()) else {
        return;
    };
    let ov = dir.path().join("ov");
    std::fs::create_dir(&ov).unwrap();
    give_to_test_user(&ov);
    let ov_arg = ov.to_str().unwrap().to_string();
    let out = exec(dir.path(), &["--overlay", &ov_arg], &image, FILE_OPS);
    assert_eq!(assert_ok(&out, "writable"), FILE_OPS_DONE);
    assert!(ov.join("upper/etc/issue").is_file() && ov.join("work").is_dir());
    let ro = format!("{ov_arg}:ro");
    let out = exec(
        dir.path(),
        &["--overlay", &ro],
        &image,
        "grep -c Changed /etc/issue; ls /etc/debian_version 2>/dev/null || echo gone; ls -d /upper /work 2>/dev/null; touch /x 2>/dev/null || echo read-only",
    );
    assert_eq!(assert_ok(&out, ":ro"), "1\ngone\nread-only\n");
}

/// An ext3 overlay image of the test user's, made by `overlay create`.
fn ext3_image(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let img = dir.join(name);
    let mut args = vec!["overlay", "create"];
    args.extend(extra);
    args.push(img.to_str().unwrap());
    assert_ok(&user_run(dir, &args, &[]), "overlay create");
    img
}

fn fsck_clean(img: &Path, offset: Option<u64>) {
    let target = match offset {
        None => img.to_path_buf(),
        Some(off) => {
            let part = img.with_extension("part");
            let data = std::fs::read(img).unwrap();
            std::fs::write(&part, &data[off as usize..]).unwrap();
            part
        }
    };
    let out = std::process::Command::new("/sbin/e2fsck")
        .args(["-fn", target.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fsck: {}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn ext3_overlay_images_persist_and_are_refused_to_a_second_writer() {
    let dir = user_dir();
    let Some(image) = debian_copy(dir.path()) else {
        return;
    };
    let img = ext3_image(dir.path(), "ov.img", &[]);
    let w = img.to_str().unwrap().to_string();
    let out = exec(dir.path(), &["--overlay", &w], &image, FILE_OPS);
    assert_eq!(assert_ok(&out, "ext3 writable"), FILE_OPS_DONE);
    fsck_clean(&img, None);
    let ro = format!("{w}:ro");
    let out = exec(
        dir.path(),
        &["--overlay", &ro],
        &image,
        "grep -c Changed /etc/issue; ls /etc/debian_version 2>/dev/null || echo gone; touch /x 2>/dev/null || echo read-only",
    );
    assert_eq!(assert_ok(&out, "ext3 :ro"), "1\ngone\nread-only\n");
    // A second writer while the first runs (and holds the image).
    let started = dir.path().join("started");
    let script = format!("touch {}; sleep 30", started.display());
    let mut first = user_vessel(
        &[
            "exec",
            "--overlay",
            &w,
            image.to_str().unwrap(),
            "sh",
            "-c",
            &script,
        ],
        &[],
        dir.path(),
    )
    .spawn()
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !started.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let second = exec(dir.path(), &["--overlay", &w], &image, "true");
    let _ = first.kill();
    let _ = first.wait();
    assert_fatal(&second, &["is in use by another container", "HINT:"]);
    // As real root, through the kernel's ext3 on a loop device.
    if running_as_root() {
        let root_img = dir.path().join("root.img");
        assert_ok(
            &run(&["overlay", "create", root_img.to_str().unwrap()]),
            "overlay create as root",
        );
        let img_arg = root_img.to_str().unwrap();
        let out = vessel()
            .args([
                "exec",
                "--overlay",
                img_arg,
                image.to_str().unwrap(),
                "sh",
                "-c",
                FILE_OPS,
            ])
            .output()
            .unwrap();
        assert_eq!(assert_ok(&out, "ext3 as root"), FILE_OPS_DONE);
        let ro = format!("{img_arg}:ro");
        let out = vessel()
            .args([
                "exec",
                "--overlay",
                &ro,
                image.to_str().unwrap(),
                "grep",
                "-c",
                "Changed",
                "/etc/issue",
            ])
            .output()
            .unwrap();
        assert_eq!(assert_ok(&out, "ext3 :ro as root"), "1\n");
        fsck_clean(&root_img, None);
    }
}

#[test]
fn a_full_ext3_overlay_reports_no_space_and_stays_consistent() {
    let dir = user_dir();
    let Some(image) = debian_copy(dir.path()) else {
        return;
    };
    let img = ext3_image(dir.path(), "small.img", &["--size", "64"]);
    let w = img.to_str().unwrap().to_string();
    let out = exec(
        dir.path(),
        &["--overlay", &w],
        &image,
        "dd if=/dev/zero of=/big bs=1M count=200 2>&1 | grep -o 'No space left on device' | head -1",
    );
    assert_eq!(
        stdout(&out),
        "No space left on device\n",
        "{}",
        stderr(&out)
    );
    fsck_clean(&img, None);
}

#[test]
fn squashfs_overlays_stack_read_only() {
    let dir = user_dir();
    let Some(image) = debian_copy(dir.path()) else {
        return;
    };
    let src = dir.path().join("src/opt");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("layer.txt"), "from the layer\n").unwrap();
    let sqfs = dir.path().join("layer.sqfs");
    let made = std::process::Command::new("mksquashfs")
        .args([
            dir.path().join("src").to_str().unwrap(),
            sqfs.to_str().unwrap(),
            "-quiet",
            "-all-root",
        ])
        .status()
        .unwrap();
    assert!(made.success());
    give_to_test_user(&sqfs);
    let ov = dir.path().join("ov");
    std::fs::create_dir(&ov).unwrap();
    give_to_test_user(&ov);
    let out = exec(
        dir.path(),
        &[
            "--overlay",
            sqfs.to_str().unwrap(),
            "--overlay",
            ov.to_str().unwrap(),
        ],
        &image,
        "cat /opt/layer.txt; echo mine > /opt/mine.txt; rm /opt/layer.txt && echo removed",
    );
    assert_eq!(assert_ok(&out, "stack"), "from the layer\nremoved\n");
    assert!(ov.join("upper/opt/mine.txt").is_file());
}

#[test]
fn a_sifs_overlay_partition_is_written_with_writable_and_read_otherwise() {
    let dir = user_dir();
    let Some(image) = debian_copy(dir.path()) else {
        return;
    };
    let out = user_run(
        dir.path(),
        &["overlay", "create", "--size", "64", image.to_str().unwrap()],
        &[],
    );
    assert_ok(&out, "overlay create into the SIF");
    let out = exec(dir.path(), &["--writable"], &image, FILE_OPS);
    assert_eq!(assert_ok(&out, "--writable"), FILE_OPS_DONE);
    let out = exec(
        dir.path(),
        &[],
        &image,
        "grep -c Changed /etc/issue; touch /x 2>/dev/null || echo read-only",
    );
    assert_eq!(assert_ok(&out, "read-only"), "1\nread-only\n");
    let list = stdout(&run(&["sif", "list", image.to_str().unwrap()]));
    let offset: u64 = list
        .lines()
        .find(|l| l.contains("Overlay"))
        .and_then(|l| l.split('|').nth(3))
        .and_then(|r| r.trim().split('-').next())
        .and_then(|o| o.parse().ok())
        .unwrap_or_else(|| panic!("no overlay partition in:\n{list}"));
    fsck_clean(&image, Some(offset));
}

#[test]
fn apt_get_installs_into_overlays_that_keep_it() {
    let dir = user_dir();
    let Some(image) = debian_copy(dir.path()) else {
        return;
    };
    let ov = dir.path().join("ov");
    std::fs::create_dir(&ov).unwrap();
    give_to_test_user(&ov);
    let img = ext3_image(dir.path(), "apt.img", &["--fakeroot", "--size", "256"]);
    let install =
        "apt-get update -qq >/dev/null 2>&1; apt-get install -y -qq hello >/dev/null 2>&1; hello";
    for layer in [ov.to_str().unwrap(), img.to_str().unwrap()] {
        let out = exec(
            dir.path(),
            &["--fakeroot", "--overlay", layer],
            &image,
            install,
        );
        assert_eq!(
            assert_ok(&out, format_args!("apt-get into {layer}")),
            "Hello, world!\n"
        );
        let ro = format!("{layer}:ro");
        let out = exec(
            dir.path(),
            &["--overlay", &ro],
            &image,
            "hello; rm /usr/bin/hello 2>/dev/null || echo kept",
        );
        assert_eq!(
            assert_ok(&out, format_args!("{layer}:ro")),
            "Hello, world!\nkept\n"
        );
    }
    fsck_clean(&img, None);
}

#[test]
fn bad_overlays_are_refused_by_name() {
    let dir = user_dir();
    let Some(image) = debian_copy(dir.path()) else {
        return;
    };
    let junk = dir.path().join("junk.img");
    std::fs::write(&junk, vec![7u8; 4096]).unwrap();
    give_to_test_user(&junk);
    assert_fatal(
        &exec(
            dir.path(),
            &["--overlay", junk.to_str().unwrap()],
            &image,
            "true",
        ),
        &["junk.img", "not an overlay image", "HINT:"],
    );
    assert_fatal(
        &exec(
            dir.path(),
            &["--overlay", "/nonexistent/ov"],
            &image,
            "true",
        ),
        &[
            "/nonexistent/ov",
            "no such directory or image file",
            "overlay create",
        ],
    );
    // A corrupt ext3 image: its superblock's magic, then garbage.
    let img = ext3_image(dir.path(), "corrupt.img", &[]);
    let mut data = std::fs::read(&img).unwrap();
    for b in &mut data[2048..65536] {
        *b = 0xff;
    }
    std::fs::write(&img, data).unwrap();
    let out = exec(
        dir.path(),
        &["--overlay", img.to_str().unwrap()],
        &image,
        "true",
    );
    assert_fatal(&out, &["corrupt.img", "fsck.ext3"]);
}
