//! Helpers of the extraction tests, and, shared with the end-to-end tests,
//! visible skips (`tests/common/skip.rs`).
#![allow(dead_code)]

#[path = "../../../../tests/common/skip.rs"]
mod skip;

pub use skip::*;

use std::process::Command;

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

pub fn is_root() -> bool {
    vessel_sys::process::is_root()
}
