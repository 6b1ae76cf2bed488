//! `vessel_image::extract` against trees packed by the real `mksquashfs`: the
//! unpacked tree must match the source (types, contents, link targets, hard
//! link groups, modes, times, owners when root), chosen paths must unpack
//! alone, and patched (hostile) images must fail cleanly without writing
//! outside the destination.

// The tests read their own settings (VESSEL_TEST_*, VESSEL_FIXTURES, CI),
// not Vessel's variables, so not through vessel-config's registry.
#![allow(clippy::disallowed_methods)]

// The SquashFS tests' helpers (corpus, tools, visible skips), shared.
#[path = "../../vessel-squashfs/tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{have, is_root};
use vessel_image::{extract, ExtractError, ExtractOptions};
use vessel_squashfs::Archive;

/// Why a test does not run without `mksquashfs`.
const NEEDS_MKSQUASHFS: &str = "needs mksquashfs (package squashfs-tools)";

fn mksquashfs(src: &Path, img: &Path, extra: &[&str]) {
    let out = Command::new("mksquashfs")
        .arg(src)
        .arg(img)
        .args(["-noappend", "-quiet", "-no-progress", "-no-xattrs"])
        .args(["-processors", "2"])
        .args(extra)
        .output()
        .expect("spawn mksquashfs");
    assert!(
        out.status.success(),
        "mksquashfs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Prepends `pad` bytes of junk, so the archive sits at an offset as in a SIF.
fn at_offset(img: &Path, pad: usize) -> (File, u64, u64) {
    let data = fs::read(img).unwrap();
    let wrapped = img.with_extension("wrapped");
    let mut f = File::create(&wrapped).unwrap();
    f.write_all(&vec![0x5a; pad]).unwrap();
    f.write_all(&data).unwrap();
    f.write_all(b"trailing junk").unwrap();
    (File::open(&wrapped).unwrap(), pad as u64, data.len() as u64)
}

fn set_mtime(p: &Path, secs: u64) {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    File::open(p).unwrap().set_modified(t).unwrap();
}

/// The source tree: every kind of entry the extractor makes, odd modes, a
/// read-only directory with contents, hard links, a sparse file.
fn build_tree(src: &Path) {
    fs::create_dir_all(src.join("d/sub")).unwrap();
    fs::write(src.join("d/f"), b"hello\n").unwrap();
    fs::hard_link(src.join("d/f"), src.join("hl")).unwrap();
    fs::hard_link(src.join("d/f"), src.join("d/sub/hl2")).unwrap();
    fs::write(src.join("empty"), b"").unwrap();
    let big: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
    fs::write(src.join("big"), &big).unwrap();
    // A hole of several blocks between two data runs, and a trailing hole.
    let f = File::create(src.join("sparse")).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"start", 0).unwrap();
    f.write_all_at(b"middle", 3 << 20).unwrap();
    f.set_len(5 << 20).unwrap();
    drop(f);
    std::os::unix::fs::symlink("/etc/passwd", src.join("abs")).unwrap();
    std::os::unix::fs::symlink("d/f", src.join("rel")).unwrap();
    std::os::unix::fs::symlink("nowhere", src.join("dangling")).unwrap();
    let st = Command::new("mkfifo")
        .arg(src.join("fifo"))
        .status()
        .unwrap();
    assert!(st.success());
    fs::write(src.join("secret"), b"s").unwrap();
    fs::write(src.join("suid"), b"#!/bin/sh\n").unwrap();
    fs::create_dir(src.join("sticky")).unwrap();
    fs::create_dir_all(src.join("ro/deeper")).unwrap();
    fs::write(src.join("ro/inner"), b"inside a read-only dir").unwrap();
    fs::write(src.join("ro/deeper/x"), b"x").unwrap();
    for (p, t) in [
        ("d/f", 1_000_000_000),
        ("big", 1_500_000_000),
        ("ro/inner", 12345),
    ] {
        set_mtime(&src.join(p), t);
    }
    for (p, m) in [
        ("secret", 0o000),
        ("suid", 0o4755),
        ("sticky", 0o1777),
        ("ro/deeper", 0o500),
        ("ro", 0o555),
        ("d/sub", 0o750),
    ] {
        fs::set_permissions(src.join(p), fs::Permissions::from_mode(m)).unwrap();
    }
    set_mtime(&src.join("ro"), 7_000_000);
}

#[derive(Debug, PartialEq, Eq)]
struct Entry {
    kind: &'static str,
    perm: u32,
    mtime: i64,
    uid: u32,
    gid: u32,
    size: u64,
    content: Vec<u8>,
    link_group: usize,
}

/// Every entry below `root`, by relative path; hard links are numbered by
/// group of equal inodes (in path order), so trees compare by structure.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut paths = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        if m.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
        }
        paths.push(p);
    }
    paths.sort();
    let mut groups: BTreeMap<(u64, u64), usize> = BTreeMap::new();
    let mut out = BTreeMap::new();
    for p in paths {
        let m = fs::symlink_metadata(&p).unwrap();
        let ft = m.file_type();
        use std::os::unix::fs::FileTypeExt;
        let (kind, content) = if ft.is_dir() {
            ("dir", Vec::new())
        } else if ft.is_symlink() {
            let t = fs::read_link(&p).unwrap();
            ("symlink", t.into_os_string().into_encoded_bytes())
        } else if ft.is_fifo() {
            ("fifo", Vec::new())
        } else {
            // Read as root or after a temporary chmod for 0o000 files.
            let mode = m.permissions().mode();
            fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
            let c = fs::read(&p).unwrap();
            fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
            ("file", c)
        };
        let link_group = if !ft.is_dir() && m.nlink() > 1 {
            let n = groups.len() + 1;
            *groups.entry((m.dev(), m.ino())).or_insert(n)
        } else {
            0
        };
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        out.insert(
            rel,
            Entry {
                kind,
                perm: m.mode() & 0o7777,
                mtime: m.mtime(),
                uid: m.uid(),
                gid: m.gid(),
                size: if ft.is_dir() { 0 } else { m.size() },
                content,
                link_group,
            },
        );
    }
    out
}

#[test]
fn extracted_tree_matches_the_source() {
    skip_unless!(have("mksquashfs"), "{NEEDS_MKSQUASHFS}");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    if is_root() {
        // Owners other than the extracting user, restored only by root.
        std::os::unix::fs::lchown(src.join("abs"), Some(1234), Some(5678)).unwrap();
        std::os::unix::fs::chown(src.join("big"), Some(42), Some(43)).unwrap();
    }
    let before = snapshot(&src);
    for (comp, extra) in [("gzip", &[][..]), ("zstd", &["-b", "4096"][..])] {
        let img = tmp.path().join(format!("{comp}.sqfs"));
        let mut args = vec!["-comp", comp];
        args.extend_from_slice(extra);
        mksquashfs(&src, &img, &args);
        let (file, offset, size) = at_offset(&img, 4096 + 17);
        let arc = Archive::open(file, offset, size).unwrap();
        let dest = tmp.path().join(format!("out-{comp}"));
        let stats = extract(&arc, &dest, &ExtractOptions::default()).unwrap();
        assert_eq!(stats.files, 8, "{stats:?}");
        assert_eq!(stats.hard_links, 2, "{stats:?}");
        assert_eq!(stats.symlinks, 3, "{stats:?}");
        assert_eq!(stats.special, 1, "{stats:?}");
        assert_eq!(stats.dirs, 5, "{stats:?}");
        // The destination itself gets the archive root's mode and times.
        let after = snapshot(&dest);
        for (p, e) in &after {
            assert_eq!(before.get(p), Some(e), "{comp}: {}", p.display());
        }
        assert_eq!(after.len(), before.len(), "{comp}");
        // The sparse file keeps its holes (at most the data blocks written).
        let sparse = fs::metadata(dest.join("sparse")).unwrap();
        assert!(
            sparse.blocks() * 512 < 1 << 20,
            "{} blocks",
            sparse.blocks()
        );
        // A non-empty destination is refused nowhere, but names never clash.
        let again = extract(&arc, &dest, &ExtractOptions::default());
        assert!(
            matches!(again, Err(ExtractError::Write { .. })),
            "{again:?}"
        );
    }
}

#[test]
fn chosen_paths_only() {
    skip_unless!(have("mksquashfs"), "{NEEDS_MKSQUASHFS}");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    build_tree(&src);
    let img = tmp.path().join("i.sqfs");
    mksquashfs(&src, &img, &[]);
    let arc = Archive::open(
        File::open(&img).unwrap(),
        0,
        fs::metadata(&img).unwrap().len(),
    )
    .unwrap();
    let dest = tmp.path().join("out");
    let opts = ExtractOptions {
        paths: vec!["/d".into(), "/ro/inner".into(), "/not/there".into()],
        owners: Some(false),
    };
    extract(&arc, &dest, &opts).unwrap();
    let got: Vec<_> = snapshot(&dest).into_keys().collect();
    let want: Vec<PathBuf> = ["", "d", "d/f", "d/sub", "d/sub/hl2", "ro", "ro/inner"]
        .iter()
        .map(PathBuf::from)
        .collect();
    assert_eq!(got, want);
    assert_eq!(fs::read(dest.join("d/sub/hl2")).unwrap(), b"hello\n");
    assert_eq!(
        fs::metadata(dest.join("ro")).unwrap().permissions().mode() & 0o7777,
        0o555
    );
    let bad = extract(
        &arc,
        &tmp.path().join("bad"),
        &ExtractOptions {
            paths: vec!["/d/../../etc".into()],
            owners: None,
        },
    );
    assert!(matches!(bad, Err(ExtractError::BadPath { .. })), "{bad:?}");
}

/// Builds an image with uncompressed metadata so names can be patched.
fn patched_image(tmp: &Path, build: impl FnOnce(&Path), from: &[u8], to: &[u8]) -> Archive {
    let src = tmp.join("src");
    fs::create_dir(&src).unwrap();
    build(&src);
    let img = tmp.join("i.sqfs");
    mksquashfs(&src, &img, &["-noI", "-noD", "-noF", "-noX"]);
    let mut data = fs::read(&img).unwrap();
    let at = data
        .windows(from.len())
        .position(|w| w == from)
        .expect("name in the image");
    assert_eq!(
        data.windows(from.len()).filter(|w| *w == from).count(),
        1,
        "name appears once"
    );
    data[at..at + to.len()].copy_from_slice(to);
    fs::write(&img, &data).unwrap();
    Archive::open(File::open(&img).unwrap(), 0, data.len() as u64).unwrap()
}

#[test]
fn a_name_twice_never_writes_through_an_earlier_link() {
    skip_unless!(have("mksquashfs"), "{NEEDS_MKSQUASHFS}");
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    // "QQQQQQQQ1" is a link to a directory outside the destination; the
    // patch renames the directory "QQQQQQQQ2" (holding "pwned") to the
    // same name, so a careless extractor would write through the link.
    let arc = patched_image(
        tmp.path(),
        |src| {
            std::os::unix::fs::symlink(&outside, src.join("QQQQQQQQ1")).unwrap();
            fs::create_dir(src.join("QQQQQQQQ2")).unwrap();
            fs::write(src.join("QQQQQQQQ2/pwned"), b"x").unwrap();
        },
        b"QQQQQQQQ2",
        b"QQQQQQQQ1",
    );
    let r = extract(&arc, &tmp.path().join("out"), &ExtractOptions::default());
    let line = r.as_ref().map_err(|e| vessel_sys::error_chain(e)).err();
    assert!(
        line.as_deref()
            .is_some_and(|l| l.contains("/QQQQQQQQ1: File exists")),
        "{line:?}"
    );
    match r {
        Err(ExtractError::Write { ref source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists, "{r:?}")
        }
        other => panic!("expected a clash, got {other:?}"),
    }
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

    // The same with a file: O_EXCL|O_NOFOLLOW refuses the link.
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("victim");
    fs::write(&target, b"untouched").unwrap();
    let arc = patched_image(
        tmp.path(),
        |src| {
            std::os::unix::fs::symlink(&target, src.join("RRRRRRRR1")).unwrap();
            fs::write(src.join("RRRRRRRR2"), b"overwritten").unwrap();
        },
        b"RRRRRRRR2",
        b"RRRRRRRR1",
    );
    assert!(extract(&arc, &tmp.path().join("out"), &ExtractOptions::default()).is_err());
    assert_eq!(fs::read(&target).unwrap(), b"untouched");
}

#[test]
fn names_with_a_slash_are_refused() {
    skip_unless!(have("mksquashfs"), "{NEEDS_MKSQUASHFS}");
    let tmp = tempfile::tempdir().unwrap();
    let arc = patched_image(
        tmp.path(),
        |src| fs::write(src.join("SSSSxSSSS"), b"x").unwrap(),
        b"SSSSxSSSS",
        b"SSSS/SSSS",
    );
    let r = extract(&arc, &tmp.path().join("out"), &ExtractOptions::default());
    assert!(matches!(r, Err(ExtractError::Read { .. })), "{r:?}");
    assert!(!tmp.path().join("out/SSSS").exists());
}

/// Informative timing against `unsquashfs` on a big image (the CI Debian
/// image when present): `cargo test --release -p vessel-squashfs --test
/// extract -- --ignored --nocapture`.
#[test]
#[ignore]
fn benchmark_against_unsquashfs() {
    let img = std::env::var_os("VESSEL_BENCH_SQFS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/vessel-ci/debian/debian.sqfs"));
    skip_unless!(
        img.exists(),
        "no image at {} (set VESSEL_BENCH_SQFS)",
        img.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let len = fs::metadata(&img).unwrap().len();
    let t = std::time::Instant::now();
    let arc = Archive::open(File::open(&img).unwrap(), 0, len).unwrap();
    let stats = extract(&arc, &tmp.path().join("ours"), &ExtractOptions::default()).unwrap();
    let ours = t.elapsed();
    let t = std::time::Instant::now();
    let out = Command::new("unsquashfs")
        .args(["-no-progress", "-quiet", "-no-xattrs", "-dest"])
        .arg(tmp.path().join("theirs"))
        .arg(&img)
        .output()
        .unwrap();
    let theirs = t.elapsed();
    println!(
        "{}: vessel-squashfs {ours:.2?} ({stats:?}); unsquashfs -no-xattrs {theirs:.2?} (status {:?})",
        img.display(),
        out.status.code()
    );
}
