//! `vessel doctor`: a checkup of this node for the user who runs it. Each
//! check asks the kernel rather than guessing from versions: a user
//! namespace is made, an overlay mounted and `/dev/fuse` opened in a
//! throwaway child; the sysctls and files read around that only explain
//! a refusal. Every finding is data — the check, a status, one line, and
//! for anything short of PASS the exact fix — which the command prints as
//! a table or as JSON for monitoring.
//!
//! One file per group of checks: `userns` (user namespaces, overlay in
//! one), `fuse`, `subid` (subordinate ids, `newuidmap`, fake root),
//! `kernel` (squashfs for root), `dirs` (cache, extract cache, tmp),
//! `config`, `tools` (`mksquashfs`, `tar2sqfs`) and `gpu`.

mod config;
mod dirs;
mod fuse;
mod gpu;
mod kernel;
mod subid;
mod tools;
mod userns;

use std::path::PathBuf;

use vessel_config::conf::{Conf, ConfError};
use vessel_config::Tool;

use crate::options::Host;

/// How a check came out, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Status {
    #[serde(rename = "PASS")]
    Pass,
    /// Nothing to do: the check does not apply here, or reports a fact
    /// (no GPU driver on this node).
    #[serde(rename = "INFO")]
    Info,
    /// Containers run, but something is slower or missing (fake root
    /// with only the user's id, a cache on NFS).
    #[serde(rename = "WARN")]
    Warn,
    /// Containers, or a part of them, do not run on this node.
    #[serde(rename = "FAIL")]
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Info => "INFO",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// One check's outcome.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The check's name, the same on every node (monitoring keys on it).
    pub check: &'static str,
    pub status: Status,
    /// What was found, on one line.
    pub finding: String,
    /// The exact fix, for anything short of PASS or INFO.
    pub fix: Option<String>,
}

impl Finding {
    pub fn pass(check: &'static str, finding: impl Into<String>) -> Finding {
        Finding {
            check,
            status: Status::Pass,
            finding: finding.into(),
            fix: None,
        }
    }

    pub fn info(check: &'static str, finding: impl Into<String>) -> Finding {
        Finding {
            status: Status::Info,
            ..Finding::pass(check, finding)
        }
    }

    pub fn warn(
        check: &'static str,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            check,
            status: Status::Warn,
            finding: finding.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn fail(
        check: &'static str,
        finding: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            status: Status::Fail,
            ..Finding::warn(check, finding, fix)
        }
    }
}

/// Who asks, the environment the answers depend on (variables are read
/// through `get`, so tests give their own), and the site's configuration
/// as a run would read it.
pub struct Node<'a> {
    pub tool: Tool,
    pub host: Host,
    pub get: &'a dyn Fn(&str) -> Option<String>,
    pub site: Result<Conf, ConfError>,
}

impl<'a> Node<'a> {
    /// The calling process's user, with variables from `get`.
    pub fn current(tool: Tool, get: &'a dyn Fn(&str) -> Option<String>) -> Node<'a> {
        Node {
            tool,
            host: Host::current(),
            get,
            site: Conf::load_site(tool),
        }
    }

    fn uid(&self) -> u32 {
        self.host.uid
    }

    fn gid(&self) -> u32 {
        self.host.gid
    }

    fn user(&self) -> String {
        self.host.user_name()
    }

    fn var(&self, name: &str) -> Option<String> {
        (self.get)(name).filter(|v| !v.is_empty())
    }

    fn is_root(&self) -> bool {
        self.uid() == 0
    }

    /// Where pulls and builds put temporary files (`APPTAINER_TMPDIR`,
    /// `TMPDIR`, `/tmp`).
    fn tmp_dir(&self) -> PathBuf {
        vessel_config::paths::tmp_dir(self.tool, &|n: &str| (self.get)(n))
    }

    /// The name of Apptainer's variable `key` in this persona's first
    /// prefix (`APPTAINER_CACHEDIR`, or `SINGULARITY_CACHEDIR`).
    fn persona_var(&self, key: &str) -> String {
        format!("{}{key}", self.tool.env_prefixes()[0])
    }
}

/// Runs every check, in the order they are printed.
pub fn run(node: &Node<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let userns = userns::user_namespaces(node);
    let have_userns = userns.status == Status::Pass;
    findings.push(userns);
    findings.push(userns::overlay(node, have_userns));
    findings.push(fuse::device(node, have_userns));
    findings.push(fuse::uring(node));
    findings.extend(subid::checks(node, have_userns));
    findings.push(kernel::squashfs(node));
    findings.extend(dirs::checks(node));
    findings.push(config::conf(node));
    findings.extend(tools::checks(node));
    findings.extend(gpu::checks(node));
    findings
}

/// Whether any check failed (the command's exit status is 1 then).
pub fn any_failed(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.status == Status::Fail)
}

/// A size for people: `12.3 GiB`.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A file's owner for people: `alice (uid 1001)`, `root`.
fn owner_name(uid: u32) -> String {
    match vessel_sys::user::passwd_by_uid(uid) {
        Some(u) if uid == 0 => u.name,
        Some(u) => format!("{} (uid {uid})", u.name),
        None => format!("uid {uid}"),
    }
}

/// A directory for a probe's mount points: in the user's tmp dir, else
/// `/tmp`.
fn scratch_dir(node: &Node<'_>) -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("vessel-doctor-")
        .tempdir_in(node.tmp_dir())
        .or_else(|_| {
            tempfile::Builder::new()
                .prefix("vessel-doctor-")
                .tempdir_in("/tmp")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_order_from_best_to_worst() {
        assert!(Status::Pass < Status::Info);
        assert!(Status::Warn < Status::Fail);
        assert_eq!(Status::Fail.label(), "FAIL");
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
    }

    #[test]
    fn only_a_failure_fails() {
        let w = Finding::warn("x", "slow", "do y");
        assert!(!any_failed(std::slice::from_ref(&w)));
        assert!(any_failed(&[w, Finding::fail("z", "broken", "fix z")]));
    }
}
