//! `vessel overlay create`: ext3 overlay images and SIF overlay partitions,
//! made by the unprivileged test user and checked with e2fsprogs' own
//! `fsck.ext3` and `debugfs`, and (for a SIF) with the reference Go
//! siftool.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output};

use common::*;

const MIB: u64 = 1 << 20;

/// `vessel overlay create ARGS` as the test user in `dir`.
fn create(dir: &Path, args: &[&str]) -> Output {
    let mut all = vec!["overlay", "create"];
    all.extend_from_slice(args);
    user_run(dir, &all, &[])
}

fn create_ok(dir: &Path, args: &[&str]) {
    let out = create(dir, args);
    assert_ok(&out, format_args!("overlay create {args:?}"));
    assert!(stderr(&out).is_empty(), "{}", stderr(&out));
}

/// An e2fsprogs tool (in /sbin, which the tests' PATH may lack).
fn e2fs(tool: &str) -> Command {
    let path = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{tool} (e2fsprogs) is needed for this test"));
    let mut cmd = Command::new(path);
    cmd.env("LC_ALL", "C");
    cmd
}

/// `fsck.ext3 -fn`: a forced, read-only check, which must find nothing.
fn assert_clean(image: &Path) {
    let out = e2fs("fsck.ext3").arg("-fn").arg(image).output().unwrap();
    assert!(
        out.status.success(),
        "fsck.ext3 -fn {}: {}{}",
        image.display(),
        stdout(&out),
        stderr(&out)
    );
}

/// One directory entry as `debugfs ls -l` shows it.
#[derive(Debug)]
struct Entry {
    name: String,
    mode: String,
    uid: u32,
    gid: u32,
}

/// The entries of `dir` in the file system `image`, by `debugfs`.
fn ls(image: &Path, dir: &str) -> Vec<Entry> {
    let out = e2fs("debugfs")
        .arg("-R")
        .arg(format!("ls -l \"{dir}\""))
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 9).then(|| Entry {
                name: f[8..].join(" "),
                mode: f[1].to_string(),
                uid: f[3].parse().unwrap(),
                gid: f[4].parse().unwrap(),
            })
        })
        .collect()
}

fn entry<'a>(entries: &'a [Entry], name: &str) -> &'a Entry {
    entries
        .iter()
        .find(|e| e.name == name)
        .unwrap_or_else(|| panic!("no {name} in {entries:?}"))
}

/// The layout Apptainer makes: `upper/` and `work/` (and the root
/// directory) owned by `uid:gid`, mode 0755.
fn assert_layout(image: &Path, uid: u32, gid: u32) {
    let root = ls(image, "/");
    for name in [".", "upper", "work"] {
        let e = entry(&root, name);
        assert_eq!((e.uid, e.gid), (uid, gid), "{name}: {root:?}");
        assert_eq!(e.mode, "40755", "{name}: {root:?}");
    }
}

/// The file system's size in bytes, from its superblock.
fn fs_bytes(image: &Path) -> u64 {
    let out = e2fs("dumpe2fs").arg("-h").arg(image).output().unwrap();
    let text = stdout(&out);
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    field("Block count:") * field("Block size:")
}

/// The names in `dir`: nothing but what the test made may be there.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn defaults_make_an_allocated_64_mib_ext3_image_owned_by_the_user() {
    let dir = user_dir();
    create_ok(dir.path(), &["overlay.img"]);
    let image = dir.path().join("overlay.img");
    let meta = std::fs::metadata(&image).unwrap();
    let user = test_user();
    assert_eq!(meta.len(), 64 * MIB);
    assert_eq!((meta.uid(), meta.gid()), (user.uid, user.gid));
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert!(meta.blocks() * 512 >= 64 * MIB, "{} blocks", meta.blocks());
    assert_eq!(fs_bytes(&image), 64 * MIB);
    assert_clean(&image);
    assert_layout(&image, user.uid, user.gid);
    assert!(ls(&image, "/upper").iter().all(|e| e.name.starts_with('.')));
    assert_eq!(names(dir.path()), ["overlay.img"]);
}

#[test]
fn size_sets_the_file_system_size() {
    let dir = user_dir();
    create_ok(dir.path(), &["--size", "100", "big.img"]);
    let image = dir.path().join("big.img");
    assert_eq!(std::fs::metadata(&image).unwrap().len(), 100 * MIB);
    assert_eq!(fs_bytes(&image), 100 * MIB);
    assert_clean(&image);
}

#[test]
fn sparse_leaves_most_blocks_unallocated() {
    let dir = user_dir();
    create_ok(dir.path(), &["-s", "128", "--sparse", "sparse.img"]);
    let image = dir.path().join("sparse.img");
    let meta = std::fs::metadata(&image).unwrap();
    assert_eq!(meta.len(), 128 * MIB);
    assert!(
        meta.blocks() * 512 < 64 * MIB,
        "{} bytes allocated",
        meta.blocks() * 512
    );
    assert_clean(&image);
    let user = test_user();
    assert_layout(&image, user.uid, user.gid);
}

#[test]
fn create_dir_makes_directories_under_upper() {
    let dir = user_dir();
    create_ok(
        dir.path(),
        &[
            "--create-dir",
            "/opt/data",
            "--create-dir",
            "scratch/a b",
            "o.img",
        ],
    );
    let image = dir.path().join("o.img");
    assert_clean(&image);
    let user = test_user();
    for (parent, name) in [
        ("/upper", "opt"),
        ("/upper", "scratch"),
        ("/upper/opt", "data"),
        ("/upper/scratch", "a b"),
    ] {
        let entries = ls(&image, parent);
        let e = entry(&entries, name);
        assert_eq!(
            (e.uid, e.gid, e.mode.as_str()),
            (user.uid, user.gid, "40755")
        );
    }
    assert!(ls(&image, "/work").iter().all(|e| e.name.starts_with('.')));
}

#[test]
fn fakeroot_gives_the_layout_to_root() {
    let dir = user_dir();
    create_ok(
        dir.path(),
        &["--fakeroot", "--create-dir", "/srv/\"q\" x", "fake.img"],
    );
    let image = dir.path().join("fake.img");
    assert_clean(&image);
    assert_layout(&image, 0, 0);
    let srv = ls(&image, "/upper/srv");
    let e = entry(&srv, "\"q\" x");
    assert_eq!((e.uid, e.gid), (0, 0));
    // The image file itself stays the user's.
    assert_eq!(std::fs::metadata(&image).unwrap().uid(), test_user().uid);
}

/// The `(start, end)` of the overlay partition in `vessel sif list`, which
/// prints it as the reference does: `FS (Ext3/Overlay/ARCH)`.
fn overlay_extent(list: &str, arch: &str) -> (u64, u64) {
    let line = list
        .lines()
        .find(|l| l.ends_with(&format!("|FS (Ext3/Overlay/{arch})")))
        .unwrap_or_else(|| panic!("no overlay partition in:\n{list}"));
    let cells: Vec<&str> = line.split('|').collect();
    assert_eq!(cells[1].trim(), "1", "group 1: {line}");
    assert_eq!(cells[2].trim(), "NONE", "no link: {line}");
    let (start, end) = cells[3].trim().split_once('-').unwrap();
    (start.parse().unwrap(), end.parse().unwrap())
}

fn extract(image: &Path, start: u64, end: u64, to: &Path) {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(image).unwrap();
    f.seek(SeekFrom::Start(start)).unwrap();
    let mut out = std::fs::File::create(to).unwrap();
    std::io::copy(&mut f.take(end - start), &mut out).unwrap();
}

#[test]
fn into_a_sif_appends_an_ext3_overlay_partition() {
    let dir = user_dir();
    let sif = dir.path().join("busybox.sif");
    unsigned_copy(&busybox(), &sif);
    give_to_test_user(&sif);
    let before = stdout(&run(&["sif", "list", sif.to_str().unwrap()]));
    create_ok(
        dir.path(),
        &["--size", "64", "--create-dir", "/data", "busybox.sif"],
    );
    assert_eq!(names(dir.path()), ["busybox.sif"]);

    let list = assert_ok(&run(&["sif", "list", sif.to_str().unwrap()]), "sif list");
    assert!(list.starts_with(&before), "{before}\n{list}");
    let (start, end) = overlay_extent(&list, "amd64");
    assert_eq!(start % 4096, 0);
    assert_eq!(end - start, 64 * MIB);
    assert_eq!(std::fs::metadata(&sif).unwrap().len(), end);

    let part = dir.path().join("part.ext3");
    extract(&sif, start, end, &part);
    assert_clean(&part);
    let user = test_user();
    assert_layout_with_data(&part, user.uid, user.gid);

    // What the runtime finds.
    let image = vessel_image::open_image(&sif).unwrap();
    assert_eq!(image.overlay_partition(), Some((start, end - start)));

    if let Some(siftool) = go_oracle("VESSEL_SIFTOOL") {
        let reference = |args: &[&str]| {
            let out = Command::new(&siftool).args(args).output().unwrap();
            assert_ok(&out, format_args!("siftool {args:?}"))
        };
        let path = sif.to_str().unwrap();
        assert_eq!(reference(&["list", path]), list);
        let id = list
            .lines()
            .find(|l| l.contains("Ext3/Overlay"))
            .and_then(|l| l.split('|').next())
            .unwrap()
            .trim()
            .to_string();
        let info = reference(&["info", &id, path]);
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.trim().strip_prefix(name))
                .map(str::trim)
                .unwrap_or_else(|| panic!("no {name} in {info}"))
                .to_string()
        };
        assert_eq!(field("Partition Type:"), "Overlay");
        assert_eq!(field("Filesystem Type:"), "Ext3");
        assert_eq!(field("Group ID:"), "1");
        assert_eq!(
            info,
            stdout(&run(&["sif", "info", &id, path])),
            "sif info {id}"
        );
        assert_eq!(
            reference(&["header", path]),
            stdout(&run(&["sif", "header", path]))
        );
    }
}

fn assert_layout_with_data(image: &Path, uid: u32, gid: u32) {
    let root = ls(image, "/");
    for name in ["upper", "work"] {
        let e = entry(&root, name);
        assert_eq!((e.uid, e.gid), (uid, gid), "{name}: {root:?}");
    }
    let upper = ls(image, "/upper");
    let e = entry(&upper, "data");
    assert_eq!((e.uid, e.gid), (uid, gid));
}

#[test]
fn refusals_name_the_problem_and_leave_files_alone() {
    let dir = user_dir();
    let d = dir.path();
    // An image there already.
    create_ok(d, &["o.img"]);
    let before = std::fs::read(d.join("o.img")).unwrap();
    let out = create(d, &["o.img"]);
    assert_fatal(
        &out,
        &["o.img already exists", "ext3 overlay image", "HINT:"],
    );
    assert!(
        std::fs::read(d.join("o.img")).unwrap() == before,
        "o.img changed"
    );

    // Any other file.
    write_for_user(d, "notes.txt", "hello\n");
    assert_fatal(
        &create(d, &["notes.txt"]),
        &["notes.txt already exists and is not a SIF image", "HINT:"],
    );
    assert_eq!(
        std::fs::read_to_string(d.join("notes.txt")).unwrap(),
        "hello\n"
    );

    // Too small, or a directory outside upper/.
    assert_fatal(
        &create(d, &["--size", "32", "small.img"]),
        &["--size 32 is too small", "at least 64 MiB", "HINT:"],
    );
    assert_fatal(
        &create(d, &["--create-dir", "../../etc", "x.img"]),
        &["--create-dir", "outside the overlay's upper directory"],
    );

    // No directory to make it in, and a link to nothing.
    assert_fatal(
        &create(d, &["no-such-dir/x.img"]),
        &["could not create files in", "no such directory", "HINT:"],
    );
    std::os::unix::fs::symlink("nowhere", d.join("dangling.img")).unwrap();
    assert_fatal(&create(d, &["dangling.img"]), &["dangling.img"]);
    std::fs::remove_file(d.join("dangling.img")).unwrap();

    // A signed SIF, and one without a root file system.
    let signed = d.join("signed.sif");
    std::fs::copy(busybox(), &signed).unwrap();
    std::fs::set_permissions(&signed, std::fs::Permissions::from_mode(0o644)).unwrap();
    give_to_test_user(&signed);
    let signed_before = std::fs::read(&signed).unwrap();
    assert_fatal(
        &create(d, &["signed.sif"]),
        &["signed.sif is signed", "break its signatures", "HINT:"],
    );
    assert!(
        std::fs::read(&signed).unwrap() == signed_before,
        "signed.sif changed"
    );
    let empty = d.join("empty.sif");
    std::fs::copy(sif_fixtures().join("images/empty.sif"), &empty).unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o644)).unwrap();
    give_to_test_user(&empty);
    assert_fatal(
        &create(d, &["empty.sif"]),
        &["empty.sif has no root file system"],
    );

    // A SIF that has its overlay already.
    let sif = d.join("b.sif");
    unsigned_copy(&busybox(), &sif);
    give_to_test_user(&sif);
    create_ok(d, &["b.sif"]);
    let sif_before = std::fs::read(&sif).unwrap();
    let list = stdout(&run(&["sif", "list", sif.to_str().unwrap()]));
    let id = list
        .lines()
        .find(|l| l.contains("Ext3/Overlay"))
        .and_then(|l| l.split('|').next())
        .unwrap()
        .trim()
        .to_string();
    let out = create(d, &["b.sif"]);
    assert_fatal(
        &out,
        &[
            &format!("b.sif already has a writable overlay partition (object {id})"),
            &format!("vessel sif del {id} "),
        ],
    );
    assert!(std::fs::read(&sif).unwrap() == sif_before, "b.sif changed");

    // Nothing was left on the way.
    assert_eq!(
        names(d),
        ["b.sif", "empty.sif", "notes.txt", "o.img", "signed.sif"]
    );
}

/// What a SIF holds: its length, header and objects (as `sif header` and
/// `sif list` show them) and its root file system's bytes.
fn sif_state(sif: &Path) -> (u64, String, String, Vec<u8>) {
    let path = sif.to_str().unwrap();
    let list = stdout(&run(&["sif", "list", path]));
    assert!(list.contains("*System"), "{list}");
    (
        std::fs::metadata(sif).unwrap().len(),
        stdout(&run(&["sif", "header", path])),
        list,
        run(&["sif", "dump", "4", path]).stdout,
    )
}

/// A small tmpfs, given to the test user, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(bytes: u64) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let user = test_user();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!(
                "size={bytes},mode=0755,uid={},gid={}",
                user.uid, user.gid
            ))
            .arg("vessel-test")
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success());
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_is_reported_and_leaves_nothing() {
    skip_unless!(running_as_root(), "needs root, to mount a small tmpfs");
    // Too little room for the allocated image: refused before writing.
    let fs = Tmpfs::new(32 * MIB);
    let out = create(fs.path(), &["o.img"]);
    assert_fatal(
        &out,
        &["not enough space in", "for a 64 MiB overlay", "--sparse"],
    );
    assert!(names(fs.path()).is_empty());

    // No room even for a sparse image's file system metadata.
    let small = Tmpfs::new(200 << 10);
    let out = create(small.path(), &["--sparse", "o.img"]);
    assert_fatal(&out, &["not enough space in", "for a 64 MiB overlay"]);
    assert!(names(small.path()).is_empty());

    // Room for the partition, not for it and the file system made first:
    // the disk fills part way through the SIF, which is cut back whole.
    let sif_len = std::fs::metadata(busybox()).unwrap().len();
    let fs = Tmpfs::new(sif_len.div_ceil(4096) * 4096 + 64 * MIB);
    let sif = fs.path().join("b.sif");
    unsigned_copy(&busybox(), &sif);
    give_to_test_user(&sif);
    let before = sif_state(&sif);
    let out = create(fs.path(), &["b.sif"]);
    assert_fatal(
        &out,
        &[
            "not enough space in",
            "for a 64 MiB overlay",
            "No space left on device",
        ],
    );
    assert!(!stderr(&out).contains("mkfs"), "{}", stderr(&out));
    // The bytes of the deleted signature, past the last object, may have
    // been overwritten: they belong to no object.
    assert_eq!(sif_state(&sif), before);
    assert_eq!(names(fs.path()), ["b.sif"]);
}
