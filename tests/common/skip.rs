//! Visible test gating, shared by every test binary of the workspace (the
//! crates' tests include this file with `#[path]`).
//!
//! A test that cannot run here (no root, no registry, a tool missing) calls
//! [`skip`] or [`skip_unless!`]: one `SKIP: <test>: <reason>` line on
//! standard error, and one line appended to the file named by
//! `VESSEL_TEST_SKIP_LOG`, so that `scripts/test.sh` counts the skips (cargo
//! hides what passing tests print). Under CI (`CI` set, as CI services set
//! it) nothing may skip: the test fails instead, naming what is missing.

#![allow(dead_code)]
// The tests read their own settings (VESSEL_TEST_*, VESSEL_FIXTURES, CI),
// not Vessel's variables, so not through vessel-config's registry.
#![allow(clippy::disallowed_methods)]

use std::ffi::OsString;
use std::fmt::Display;
use std::io::Write;

/// The file every skip is appended to, one line each.
pub const SKIP_LOG_VAR: &str = "VESSEL_TEST_SKIP_LOG";

/// Whether this is a CI run: `CI` is set to anything but empty, `0` or
/// `false`.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "0" && v != "false")
}

/// The running test, as `binary::test` (libtest names each test's thread
/// after it).
pub fn test_name() -> String {
    let thread = std::thread::current();
    let name = thread.name().unwrap_or("?");
    format!("{}::{name}", env!("CARGO_CRATE_NAME"))
}

/// Records that the calling test (or the part of it named in `reason`)
/// does not run here, for `reason`; under CI, fails the test instead. The
/// caller then returns (or leaves out the part).
#[track_caller]
pub fn skip(reason: impl Display) {
    let test = test_name();
    if in_ci() {
        panic!("CI must not skip tests, and {test} cannot run: {reason}");
    }
    let line = format!("SKIP: {test}: {reason}");
    eprintln!("{line}");
    if let Some(log) = std::env::var_os(SKIP_LOG_VAR) {
        // One write of a short line to an O_APPEND file: lines of tests
        // running in parallel do not mix.
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap_or_else(|e| panic!("{SKIP_LOG_VAR}={}: {e}", log.to_string_lossy()));
        file.write_all(format!("{line}\n").as_bytes())
            .unwrap_or_else(|e| panic!("{SKIP_LOG_VAR}={}: {e}", log.to_string_lossy()));
    }
}

/// The variable `var`, or `None` after a [`skip`] saying that it is not set
/// and who sets it (`set_by`).
#[track_caller]
pub fn env_or_skip(var: &str, set_by: &str) -> Option<OsString> {
    let value = std::env::var_os(var);
    if value.is_none() {
        skip(format_args!("{var} is not set ({set_by})"));
    }
    value
}

/// `skip_unless!(cond, "reason {}", args…)`: unless `cond` holds, skips the
/// calling test (see [`skip`]) and returns from it.
#[macro_export]
macro_rules! skip_unless {
    ($cond:expr, $($reason:tt)+) => {
        if !$cond {
            $crate::common::skip(format_args!($($reason)+));
            return;
        }
    };
}
