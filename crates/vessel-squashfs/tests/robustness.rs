//! Shared SIF fixtures, corrupted images and concurrent readers.

mod common;

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use vessel_squashfs::{exercise_untrusted, Archive, Kind};

fn sif_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            sif_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "sif") {
            out.push(p);
        }
    }
}

/// Every SquashFS partition of the shared SIF fixtures: opened through the
/// SIF descriptor, walked completely and compared with unsquashfs.
#[test]
fn sif_fixtures() {
    let mut sifs = Vec::new();
    let dir = common::fixtures::sif_fixtures();
    sif_files(&dir, &mut sifs);
    sifs.sort();
    skip_unless!(
        !sifs.is_empty(),
        "no SIF fixtures in {} (set VESSEL_FIXTURES)",
        dir.display()
    );
    skip_unless!(
        have("unsquashfs"),
        "needs unsquashfs (package squashfs-tools)"
    );
    let (mut matched, mut rejected) = (0, 0);
    for path in &sifs {
        let Ok(sif) = vessel_sif::Sif::load(File::open(path).unwrap()) else {
            continue;
        };
        let Some(d) = sif.primary_partition() else {
            continue;
        };
        let (Ok(offset), Ok(size)) = (u64::try_from(d.offset), u64::try_from(d.size)) else {
            continue;
        };
        let mut magic = [0u8; 4];
        use std::os::unix::fs::FileExt;
        if File::open(path)
            .unwrap()
            .read_exact_at(&mut magic, offset)
            .is_err()
            || &magic != b"hsqs"
        {
            continue;
        }
        let theirs = unsquashfs_listing(path, offset);
        let ours = std::panic::catch_unwind(|| {
            let arc = Archive::open(File::open(path).unwrap(), offset, size).ok()?;
            let walked = walk(&arc);
            // Read every file completely.
            for (_, ino) in walked.inodes.values() {
                if ino.kind == Kind::File {
                    assert_eq!(read_all(&arc, ino, 65536).len() as u64, ino.size);
                }
            }
            Some(walked.listing)
        });
        let ours = ours.unwrap_or_else(|_| panic!("{}: panicked", path.display()));
        match (theirs, ours) {
            (Some(t), Some(o)) => {
                assert_same_listing(&o, &t, &path.display().to_string());
                matched += 1;
            }
            (Some(_), None) => panic!("{}: unsquashfs reads it, we do not", path.display()),
            (None, _) => rejected += 1,
        }
    }
    println!("fixtures: {matched} squashfs partitions match unsquashfs, {rejected} rejected by unsquashfs");
    assert!(matched > 0, "no fixture had a readable squashfs partition");
}

/// A small image exercising every table: dirs, fragments, xattrs, links.
fn small_image(dir: &Path, comp: &str) -> Option<Vec<u8>> {
    if !have("mksquashfs") {
        return None;
    }
    let src = dir.join(format!("small-{comp}"));
    let mut rng = Rng(3);
    for i in 0..30 {
        let p = src.join(format!("d{}/f{i}", i % 4));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        let n = (rng.next() % 9000) as usize;
        File::create(&p).unwrap().write_all(&rng.bytes(n)).unwrap();
    }
    std::os::unix::fs::symlink("d1/f1", src.join("link")).unwrap();
    fs::hard_link(src.join("d0/f0"), src.join("hard")).unwrap();
    set_xattr(&src.join("d0/f0"), "user.a", "b");
    set_xattr(&src.join("d1"), "user.shared", &"v".repeat(100));
    set_xattr(&src.join("d2"), "user.shared", &"v".repeat(100));
    let img = dir.join(format!("small-{comp}.sqfs"));
    let out = Command::new("mksquashfs")
        .arg(&src)
        .arg(&img)
        .args([
            "-noappend",
            "-quiet",
            "-no-progress",
            "-comp",
            comp,
            "-b",
            "4096",
        ])
        .output()
        .unwrap();
    out.status.success().then(|| fs::read(&img).unwrap())
}

fn exercise_bytes(tmp: &Path, data: &[u8]) -> bool {
    let p = tmp.join("mutant");
    fs::write(&p, data).unwrap();
    exercise_untrusted(File::open(&p).unwrap(), 0, data.len() as u64)
}

/// Flips and truncates bytes at many positions: every variant must finish
/// quickly without panicking.
#[test]
fn corrupted_images_do_not_panic() {
    let tmp = tempfile::tempdir().unwrap();
    for comp in ["gzip", "lzo", "lz4", "xz", "zstd"] {
        let Some(img) = small_image(tmp.path(), comp) else {
            skip(format_args!("the {comp} image: mksquashfs cannot build it"));
            continue;
        };
        assert!(
            exercise_bytes(tmp.path(), &img),
            "{comp}: pristine image must open"
        );
        let started = Instant::now();
        let mut rng = Rng(11);
        let mut tries = 0;
        // Every byte of the superblock, then spread positions through the image.
        let positions: Vec<usize> = (0..96)
            .chain((0..600).map(|_| (rng.next() % img.len() as u64) as usize))
            .collect();
        for (i, &pos) in positions.iter().enumerate() {
            let mut m = img.clone();
            m[pos] ^= [0xff, 0x01, 0x80, 0x55][i % 4];
            let r = std::panic::catch_unwind(|| exercise_bytes(tmp.path(), &m));
            assert!(r.is_ok(), "{comp}: panic with byte {pos} flipped");
            tries += 1;
        }
        for len in (0..img.len()).step_by(img.len() / 50 + 1) {
            let r = std::panic::catch_unwind(|| exercise_bytes(tmp.path(), &img[..len]));
            assert!(r.is_ok(), "{comp}: panic when truncated to {len}");
            tries += 1;
        }
        // Random garbage runs over metadata.
        for _ in 0..100 {
            let mut m = img.clone();
            let at = (rng.next() % img.len() as u64) as usize;
            let n = ((rng.next() % 64) as usize).min(img.len() - at);
            let junk = rng.bytes(n);
            m[at..at + n].copy_from_slice(&junk);
            let r = std::panic::catch_unwind(|| exercise_bytes(tmp.path(), &m));
            assert!(r.is_ok(), "{comp}: panic with garbage at {at}");
            tries += 1;
        }
        let took = started.elapsed();
        println!("{comp}: {tries} corrupted variants in {took:?}");
        assert!(
            took < Duration::from_secs(120),
            "{comp}: corrupted images too slow"
        );
    }
}

/// Many threads reading one shared Archive agree with a single-threaded read.
#[test]
fn concurrent_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(img) = small_image(tmp.path(), "zstd") else {
        skip("mksquashfs cannot build the zstd image");
        return;
    };
    let p = tmp.path().join("conc.sqfs");
    fs::write(&p, &img).unwrap();
    let arc = Arc::new(Archive::open(File::open(&p).unwrap(), 0, img.len() as u64).unwrap());
    let walked = walk(&arc);
    let expect: Vec<(vessel_squashfs::Inode, Vec<u8>)> = walked
        .inodes
        .values()
        .filter(|(_, i)| i.kind == Kind::File)
        .map(|(_, i)| (i.clone(), read_all(&arc, i, 1000)))
        .collect();
    let expect = Arc::new(expect);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (arc, expect) = (Arc::clone(&arc), Arc::clone(&expect));
            std::thread::spawn(move || {
                let mut rng = Rng(100 + t);
                for _ in 0..2000 {
                    let (ino, want) = &expect[(rng.next() % expect.len() as u64) as usize];
                    let off = rng.next() % (want.len() as u64 + 1);
                    let mut buf = vec![0u8; (rng.next() % 10_000) as usize];
                    let n = arc.read(ino, off, &mut buf).unwrap();
                    let s = off as usize;
                    assert_eq!(&buf[..n], &want[s..(s + buf.len()).min(want.len())]);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
