//! Broken or hostile files given as images: each gets one clear `FATAL:`
//! line naming the file and the problem, exit 255, and never a panic or a
//! hang. Corruptions are made from a real image of the reference corpus.

mod common;

use std::path::{Path, PathBuf};

use common::*;

const HEADER: usize = 128;
const DESCR: usize = 585;
const DESCR_OFFSET: usize = 4096;

fn corrupt(name: &str, edit: impl FnOnce(&mut Vec<u8>)) -> (tempfile::TempDir, PathBuf) {
    let mut bytes = std::fs::read(sif_fixtures().join("images/two-groups.sif")).unwrap();
    edit(&mut bytes);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    (dir, path)
}

fn put_i64(b: &mut [u8], at: usize, v: i64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// Byte offset of field `field` in descriptor slot `slot`.
fn descr(slot: usize, field: usize) -> usize {
    DESCR_OFFSET + slot * DESCR + field
}

fn assert_every_command_fails(path: &Path, needles: &[&str]) {
    let p = path.to_str().unwrap();
    for args in [
        vec!["sif", "list", p],
        vec!["sif", "header", p],
        vec!["sif", "info", "1", p],
        vec!["sif", "dump", "1", p],
        vec!["sif", "del", "1", p],
        vec!["inspect", p],
    ] {
        let out = run(&args);
        let mut all = needles.to_vec();
        all.push(p);
        assert_fatal(&out, &all);
        assert!(stdout(&out).is_empty(), "{args:?} printed {}", stdout(&out));
    }
}

#[test]
fn truncated_file() {
    for len in [0, 10, 127, 20_000, 40_000, 300_000] {
        let (_d, path) = corrupt("truncated.sif", |b| b.truncate(len));
        let needle = if len < HEADER {
            "too short"
        } else {
            "truncated"
        };
        let p = path.to_str().unwrap();
        assert_fatal(&run(&["sif", "list", p]), &[p, needle]);
    }
}

#[test]
fn truncated_partition_fails_everywhere() {
    let (_d, path) = corrupt("truncated.sif", |b| b.truncate(200_000));
    assert_every_command_fails(&path, &["truncated", "object 3"]);
}

#[test]
fn wrong_magic() {
    let (_d, path) = corrupt("magic.sif", |b| b[32..42].copy_from_slice(b"NOT_MAGIC\0"));
    let p = path.to_str().unwrap();
    assert_fatal(&run(&["sif", "list", p]), &[p, "not a SIF image"]);
    assert_fatal(&run(&["inspect", p]), &[p, "not recognized"]);
}

#[test]
fn wrong_version() {
    let (_d, path) = corrupt("version.sif", |b| b[42..45].copy_from_slice(b"02\0"));
    assert_every_command_fails(&path, &["unsupported SIF version"]);
}

#[test]
fn descriptor_points_past_the_end() {
    let (_d, path) = corrupt("past-end.sif", |b| put_i64(b, descr(2, 17), 1 << 40));
    assert_every_command_fails(&path, &["truncated", "object 3"]);
    let (_d, path) = corrupt("negative.sif", |b| put_i64(b, descr(2, 25), -5));
    assert_every_command_fails(&path, &["impossible offset"]);
    let (_d, path) = corrupt("overflow.sif", |b| {
        put_i64(b, descr(2, 17), i64::MAX - 10);
        put_i64(b, descr(2, 25), i64::MAX - 10);
    });
    assert_every_command_fails(&path, &["object 3"]);
}

#[test]
fn overlapping_objects() {
    // Object 3 moved onto object 2's bytes.
    let (_d, path) = corrupt("overlap.sif", |b| put_i64(b, descr(2, 17), 36_864 + 100));
    assert_every_command_fails(&path, &["overlap"]);
    // Object 1 moved into the descriptor table.
    let (_d, path) = corrupt("in-table.sif", |b| put_i64(b, descr(0, 17), 5000));
    assert_every_command_fails(&path, &["descriptor table"]);
}

#[test]
fn absurd_counts_and_sizes() {
    let (_d, path) = corrupt("total.sif", |b| {
        put_i64(b, 88, 1 << 50);
        put_i64(b, 104, (1 << 50) * DESCR as i64);
    });
    assert_every_command_fails(&path, &["truncated", "descriptor table"]);
    let (_d, path) = corrupt("negative-total.sif", |b| put_i64(b, 88, -1));
    assert_every_command_fails(&path, &["descriptor counts"]);
    let (_d, path) = corrupt("size-mismatch.sif", |b| put_i64(b, 104, 12));
    assert_every_command_fails(&path, &["does not match"]);
    let (_d, path) = corrupt("free.sif", |b| put_i64(b, 80, 1000));
    assert_every_command_fails(&path, &["descriptor counts"]);
    let (_d, path) = corrupt("data-size.sif", |b| put_i64(b, 120, i64::MAX));
    assert_every_command_fails(&path, &["data"]);
}

#[test]
fn duplicate_ids() {
    let (_d, path) = corrupt("dup.sif", |b| {
        b[descr(1, 5)..descr(1, 9)].copy_from_slice(&1u32.to_le_bytes())
    });
    assert_every_command_fails(&path, &["used twice"]);
}

#[test]
fn a_directory_is_not_a_sif_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().to_str().unwrap();
    assert_fatal(&run(&["sif", "list", p]), &[p, "is a directory"]);
    assert_fatal(&run(&["sif", "del", "1", p]), &[p, "is a directory"]);
}

#[test]
fn a_fifo_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.sif");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let p = fifo.to_str().unwrap();
    // Opening a FIFO for reading would block until a writer comes: the
    // timeout turns a hang into a failure instead of a stuck test run.
    for args in [
        vec!["sif", "list", p],
        vec!["inspect", p],
        vec!["sif", "add", "--datatype", "7", p, p],
    ] {
        let out = vessel()
            .args(&args)
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .unwrap();
        assert_fatal(&out, &[p, "FIFO"]);
    }
}

#[test]
fn missing_and_unreadable_files() {
    let out = run(&["sif", "list", "/nonexistent/image.sif"]);
    assert_fatal(&out, &["/nonexistent/image.sif", "no such file"]);
    let out = run(&["inspect", "/nonexistent/image.sif"]);
    assert_fatal(&out, &["/nonexistent/image.sif", "no such file"]);
}

#[test]
fn not_an_image_at_all() {
    let out = run(&["inspect", "/etc/passwd"]);
    assert_fatal(&out, &["/etc/passwd", "not recognized"]);
}

#[test]
fn bad_object_ids() {
    let p = sif_fixtures().join("images/one-group.sif");
    let p = p.to_str().unwrap();
    assert_fatal(&run(&["sif", "info", "0", p]), &["invalid object ID"]);
    assert_fatal(&run(&["sif", "info", "abc", p]), &["invalid object ID"]);
    assert_fatal(&run(&["sif", "dump", "7", p]), &[p, "no object with ID 7"]);
    let empty = sif_fixtures().join("images/empty.sif");
    let empty = empty.to_str().unwrap();
    assert_fatal(&run(&["sif", "info", "1", empty]), &["no objects in image"]);
}
