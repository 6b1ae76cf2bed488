//! The `fuse` image driver: every tree served by Vessel's SquashFS FUSE
//! server matches what `unsquashfs` extracts from the same image (contents,
//! modes, owners, times, link counts, link targets, xattrs), for the
//! fixtures' images, a generated corpus (several compressors, big and small
//! files, a 10k-entry directory, hard links, xattrs, sparse files) and the
//! Debian image; every directory of the Debian image lists as the
//! kernel's squashfs lists it, with listings resumed at every offset (over
//! `/dev/fuse`, and over io_uring where the kernel offers it); an
//! image without xattrs says it keeps none; and
//! as the unprivileged user, the kernel enforces the image's permissions
//! (`default_permissions`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn walker() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuse/walk.py")
}

/// The SquashFS's offset in `image` (a SIF or a bare SquashFS file).
fn offset_of(image: &Path) -> String {
    let mut magic = [0u8; 4];
    use std::io::Read;
    std::fs::File::open(image)
        .unwrap()
        .read_exact(&mut magic)
        .unwrap();
    if &magic == b"hsqs" {
        "0".into()
    } else {
        primary_offset(image)
    }
}

/// Whether the kernel offers FUSE over io_uring (`fuse.enable_uring`).
fn uring_on() -> bool {
    std::fs::read_to_string("/sys/module/fuse/parameters/enable_uring")
        .is_ok_and(|v| v.trim() == "Y")
}

/// The server's transports to check, as `VESSEL_FUSE_URING` values:
/// `/dev/fuse` always, and the io_uring queues where the kernel offers them.
fn transports() -> Vec<&'static str> {
    if uring_on() {
        vec!["0", "1"]
    } else {
        vec!["0"]
    }
}

/// The listing of the tree as the FUSE server serves it (as root, so the
/// image's owners are seen as they are), over each transport (they must
/// agree).
fn served(image: &Path, work: &Path) -> String {
    let listings: Vec<String> = transports()
        .into_iter()
        .map(|t| served_over(image, work, t))
        .collect();
    for l in &listings[1..] {
        assert!(
            *l == listings[0],
            "{}: the io_uring queues and /dev/fuse serve different trees",
            image.display()
        );
    }
    listings.into_iter().next().unwrap()
}

fn served_over(image: &Path, work: &Path, uring: &str) -> String {
    let mnt = work.join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let out = Command::new(bin_path())
        .env("VESSEL_FUSE_URING", uring)
        .arg("__mount-image")
        .arg(image)
        .arg(&mnt)
        // A `find` first lists every directory without a stat, so that
        // the io_uring queues list files without attributes; the walk's
        // stats then look each one up.
        .args([
            "sh",
            "-c",
            r#"find "$1" -xdev > /dev/null && exec python3 "$2" "$1""#,
            "sh",
        ])
        .arg(&mnt)
        .arg(walker())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        image.display(),
        stderr(&out)
    );
    stdout(&out)
}

/// The listing of the tree `unsquashfs` extracts.
fn unsquashed(image: &Path, work: &Path) -> String {
    let dest = work.join("x");
    let _ = std::fs::remove_dir_all(&dest);
    let out = Command::new("unsquashfs")
        .args([
            "-no-progress",
            "-quiet",
            "-offset",
            &offset_of(image),
            "-dest",
        ])
        .arg(&dest)
        .arg(image)
        .output()
        .expect("unsquashfs (squashfs-tools) is needed for this test");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new("python3")
        .arg(walker())
        .arg(&dest)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

fn same_tree(image: &Path) {
    let work = tempfile::tempdir().unwrap();
    let a = served(image, work.path());
    let b = unsquashed(image, work.path());
    if a != b {
        let diff: Vec<String> = a
            .lines()
            .zip(b.lines())
            .filter(|(x, y)| x != y)
            .take(5)
            .map(|(x, y)| format!("fuse:       {x}\nunsquashfs: {y}"))
            .collect();
        panic!(
            "{}: {} vs {} entries; first differences:\n{}",
            image.display(),
            a.lines().count(),
            b.lines().count(),
            diff.join("\n")
        );
    }
}

/// Why the comparisons need root.
const NEEDS_ROOT: &str = "comparing owners needs root (CI runs the tests as root)";

#[test]
fn fixture_images_match_unsquashfs() {
    skip_unless!(running_as_root(), "{NEEDS_ROOT}");
    let f = sif_fixtures();
    for image in [
        busybox(),
        f.join("apptainer/images/busybox_arm64.sif"),
        f.join("singularity-3.4/busybox-localimage.sif"),
        f.join("input/root.squashfs"),
    ] {
        same_tree(&image);
    }
}

/// A tree with what real images hold, packed with each compressor.
fn make_corpus(dir: &Path) -> PathBuf {
    let root = dir.join("tree");
    let script = r#"
set -e
cd "$1"
mkdir -p small big many nested/a/b/c links special
for i in $(seq 1 50); do printf 'file %s\n' "$i" > small/f$i; done
: > small/empty
head -c 5000000 /dev/urandom > big/random
yes 'compressible line of text' | head -c 3000000 > big/text
head -c 131073 /dev/urandom > big/one-block-and-a-byte
for i in $(seq 1 10000); do : > many/entry-$i; done
echo deep > nested/a/b/c/deep
ln -s ../small/f1 links/relative
ln -s /etc/passwd links/absolute
ln -s "$(printf 'x%.0s' $(seq 1 300))" links/long
ln -s missing links/dangling
echo shared > links/hard1 && ln links/hard1 links/hard2 && ln links/hard1 nested/hard3
truncate -s 10M special/sparse && printf 'middle' | dd of=special/sparse bs=1 seek=5000000 conv=notrunc 2>/dev/null
mkfifo special/fifo
mknod special/chr c 1 3
echo secret > special/root-only && chmod 0600 special/root-only
echo setuid > special/setuid && chmod 4755 special/setuid
echo none > special/nothing && chmod 0000 special/nothing
echo owned > special/owned && chown 1234:5678 special/owned
setfattr -n user.note -v hello small/f1
setfattr -n user.empty small/f2
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= big/text
touch -d '2001-02-03 04:05:06' small/f3
"#;
    std::fs::create_dir_all(&root).unwrap();
    let status = Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(&root)
        .status()
        .unwrap();
    assert!(status.success(), "making the corpus");
    root
}

#[test]
fn generated_corpus_matches_unsquashfs_with_every_compressor() {
    skip_unless!(running_as_root(), "{NEEDS_ROOT}");
    let dir = tempfile::tempdir().unwrap();
    let tree = make_corpus(dir.path());
    for (name, opts) in [
        ("gzip", vec!["-comp", "gzip"]),
        ("zstd", vec!["-comp", "zstd"]),
        ("xz", vec!["-comp", "xz"]),
        ("lz4", vec!["-comp", "lz4"]),
        ("lzo", vec!["-comp", "lzo"]),
        ("small-blocks", vec!["-comp", "gzip", "-b", "4096"]),
        ("uncompressed", vec!["-noI", "-noD", "-noF", "-noX"]),
    ] {
        let sqfs = dir.path().join(format!("{name}.sqfs"));
        let out = Command::new("mksquashfs")
            .arg(&tree)
            .arg(&sqfs)
            .args(["-noappend", "-quiet", "-no-progress"])
            .args(&opts)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Inside a SIF, at an offset, as images are run.
        let sif = dir.path().join(format!("{name}.sif"));
        sif_from_squashfs(&sqfs, &sif);
        same_tree(&sif);
    }
}

#[test]
fn debian_image_matches_unsquashfs() {
    skip_unless!(running_as_root(), "{NEEDS_ROOT}");
    let Some(debian) = debian_sif() else { return };
    same_tree(&debian);
}

/// The kernel's own squashfs mount of the SquashFS at `offset` in `image`,
/// unmounted when dropped.
struct KernelMount(PathBuf);

impl KernelMount {
    fn new(image: &Path, offset: &str, at: &Path) -> Result<KernelMount, String> {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "squashfs", "-o", &format!("loop,ro,offset={offset}")])
            .arg(image)
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(KernelMount(at.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }
}

impl Drop for KernelMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Every directory of the Debian image lists the same entries in the same
/// order through the FUSE server as through the kernel's squashfs, read
/// one entry per call (each call resuming the server at the previous
/// entry's offset, before the kernel has the directory cached), and seeking
/// back to every offset handed out resumes at the entry that followed it.
#[test]
fn debian_listings_match_the_kernels_at_every_offset() {
    skip_unless!(running_as_root(), "mounting a squashfs needs root");
    let Some(debian) = debian_sif() else { return };
    let lister = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuse/listings.py");
    let work = tempfile::tempdir().unwrap();
    let kernel = match KernelMount::new(&debian, &offset_of(&debian), &work.path().join("k")) {
        Ok(m) => m,
        Err(why) => return skip(format!("the kernel cannot mount the image: {why}")),
    };
    let out = Command::new("python3")
        .arg(&lister)
        .arg(&kernel.0)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let want = stdout(&out);
    drop(kernel);
    assert!(want.lines().count() > 1000, "too few entries:\n{want}");
    assert!(!want.contains("BAD "), "the kernel's own listing:\n{want}");
    let mnt = work.path().join("f");
    std::fs::create_dir_all(&mnt).unwrap();
    for uring in transports() {
        let out = Command::new(bin_path())
            .env("VESSEL_FUSE_URING", uring)
            .arg("__mount-image")
            .arg(&debian)
            .arg(&mnt)
            .arg("python3")
            .arg(&lister)
            .arg(&mnt)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        same_listing(&stdout(&out), &want, uring);
    }
}

fn same_listing(got: &str, want: &str, uring: &str) {
    if got != want {
        let bad: Vec<&str> = got
            .lines()
            .filter(|l| l.starts_with("BAD "))
            .take(5)
            .collect();
        let diff: Vec<String> = got
            .lines()
            .zip(want.lines())
            .filter(|(x, y)| x != y)
            .take(5)
            .map(|(x, y)| format!("fuse:   {x}\nkernel: {y}"))
            .collect();
        panic!(
            "VESSEL_FUSE_URING={uring}: {} vs {} lines; {}\n{}",
            got.lines().count(),
            want.lines().count(),
            bad.join("\n"),
            diff.join("\n")
        );
    }
}

/// Where the kernel offers FUSE over io_uring, the server answers from
/// its per-CPU queues: a walk of the Debian image wakes their threads
/// about once per request; with `VESSEL_FUSE_URING=0` there are none.
#[test]
fn io_uring_queues_answer_where_the_kernel_offers_them() {
    if !uring_on() {
        return skip("the kernel's fuse.enable_uring is off (.ci/run turns it on)");
    }
    let Some(debian) = debian_sif() else { return };
    let work = tempfile::tempdir().unwrap();
    let mnt = work.path().join("m");
    std::fs::create_dir_all(&mnt).unwrap();
    // The server is the other child of `__mount-image` ($PPID here).
    let script = r#"find "$1" -xdev > /dev/null
for p in $(pgrep -P $PPID); do
  for t in /proc/$p/task/*; do
    echo "$(cat $t/comm) $(awk '/^voluntary_ctxt_switches/ { print $2 }' $t/status)"
  done
done"#;
    let wakeups = |uring: &str| -> u64 {
        let out = Command::new(bin_path())
            .env("VESSEL_FUSE_URING", uring)
            .arg("__mount-image")
            .arg(&debian)
            .arg(&mnt)
            .args(["sh", "-c", script, "sh"])
            .arg(&mnt)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .filter(|l| l.starts_with("fuse-ring-"))
            .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .sum()
    };
    let n = wakeups("1");
    assert!(
        n > 500,
        "the queues' threads woke {n} times for a walk of the image"
    );
    assert_eq!(wakeups("0"), 0);
}

/// An image without any xattrs (the Debian image) says it keeps none
/// ("not supported", as the server stops the kernel from asking), and a
/// writable layer still copies its files up; images with xattrs serve
/// them (the corpus above).
#[test]
fn an_image_without_xattrs_keeps_none() {
    let Some(debian) = debian_sif() else { return };
    let work = tempfile::tempdir().unwrap();
    let mnt = work.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let check = r#"
import errno, os, sys
for path in [sys.argv[1], os.path.join(sys.argv[1], "bin/ls"), os.path.join(sys.argv[1], "etc")]:
    for call in [lambda: os.listxattr(path), lambda: os.getxattr(path, "user.x"),
                 lambda: os.getxattr(path, "security.capability")]:
        try:
            print(path, "answered", call())
        except OSError as e:
            if e.errno != errno.ENOTSUP:
                print(path, os.strerror(e.errno))
"#;
    let out = Command::new(bin_path())
        .arg("__mount-image")
        .arg(&debian)
        .arg(&mnt)
        .args(["python3", "-c", check])
        .arg(&mnt)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "", "{}", stderr(&out));
    let out = Command::new(bin_path())
        .args(["exec", "--writable-tmpfs"])
        .arg(&debian)
        .args([
            "sh",
            "-c",
            "echo changed >> /etc/debian_version && tail -n 1 /etc/debian_version && rm /usr/bin/yes && test ! -e /usr/bin/yes",
        ])
        .env("VESSEL_IMAGE_DRIVER", "fuse")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "changed\n", "{}", stderr(&out));
}

/// As the unprivileged user: the FUSE driver runs the image, shows owners
/// the namespace cannot map (root) as the user, with a root-only file's
/// "other" access as all of its access, and lets the kernel refuse what
/// the modes refuse.
#[test]
fn unprivileged_runs_keep_the_images_permissions() {
    let dir = user_dir();
    let d = dir.path();
    let tree = d.join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    let busybox = Path::new("/bin/busybox");
    skip_unless!(
        busybox.exists(),
        "needs /bin/busybox (package busybox-static)"
    );
    std::fs::copy(busybox, tree.join("bin/busybox")).unwrap();
    for tool in ["sh", "cat", "stat", "ls"] {
        std::os::unix::fs::symlink("busybox", tree.join("bin").join(tool)).unwrap();
    }
    std::fs::write(tree.join("secret"), "root only\n").unwrap();
    std::fs::write(tree.join("public"), "everyone\n").unwrap();
    let status = Command::new("sh")
        .args([
            "-c",
            "chmod 600 \"$1/secret\" && chmod 644 \"$1/public\"",
            "sh",
        ])
        .arg(&tree)
        .status()
        .unwrap();
    assert!(status.success());
    let sqfs = d.join("img.sqfs");
    let out = Command::new("mksquashfs")
        .arg(&tree)
        .arg(&sqfs)
        .args(["-noappend", "-quiet", "-no-progress", "-all-root"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::set_permissions(&sqfs, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let env = [("VESSEL_IMAGE_DRIVER", "fuse")];
    let sq = sqfs.to_str().unwrap();
    let run_user = |args: &[&str]| {
        user_vessel(args, &env, d)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = run_user(&["exec", "--no-home", sq, "cat", "/public"]);
    assert_eq!(stdout(&out), "everyone\n", "{}", stderr(&out));
    let out = run_user(&["exec", "--no-home", sq, "cat", "/secret"]);
    assert!(!out.status.success(), "a root-only file was readable");
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    let out = run_user(&["exec", "--no-home", sq, "stat", "-c", "%u %a", "/secret"]);
    let uid = test_user().uid;
    assert_eq!(stdout(&out), format!("{uid} 0\n"), "{}", stderr(&out));
    // As fake root the same file is root's, and readable.
    let out = run_user(&["exec", "--fakeroot", "--no-home", sq, "cat", "/secret"]);
    assert_eq!(stdout(&out), "root only\n", "{}", stderr(&out));
}
