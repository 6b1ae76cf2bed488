//! Host programs run as (fake) root on the build's trees: debootstrap,
//! `mksquashfs` and the final clean-up. A tree built as fake
//! root holds files of the user's subordinate ids, which the user cannot
//! read or delete from outside the namespace; `vessel __fakeroot` runs
//! the program inside one. Real root runs it directly.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use vessel_runtime::fakeroot::Fakeroot;

#[derive(Clone, Debug)]
pub struct HostRoot {
    vessel: PathBuf,
    mode: Option<Fakeroot>,
}

impl HostRoot {
    /// For the calling user; `vessel` is the executable that provides
    /// `__fakeroot`.
    pub fn new(vessel: &Path) -> HostRoot {
        HostRoot {
            vessel: vessel.to_path_buf(),
            mode: Fakeroot::unless_root(),
        }
    }

    /// Whether the build runs as real root.
    pub fn is_real_root(&self) -> bool {
        self.mode.is_none()
    }

    /// Whether ids other than root can exist in the build's trees.
    pub fn has_subordinate_ids(&self) -> bool {
        self.mode.as_ref().is_none_or(Fakeroot::has_subordinate_ids)
    }

    /// The mode, in words, for the build log.
    pub fn describe(&self) -> String {
        match &self.mode {
            None => "Running as root: no fake root needed".into(),
            Some(m) => m.describe(),
        }
    }

    /// A command that runs `program` as root.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        if self.mode.is_none() {
            return Command::new(program);
        }
        let mut cmd = Command::new(&self.vessel);
        cmd.arg("__fakeroot").arg(program);
        cmd
    }

    /// Removes `path` with root's rights over the user's ids (best effort:
    /// what remains is left for the caller's own clean-up).
    pub fn remove_tree(&self, path: &Path) {
        if self.mode.is_none() || !path.exists() {
            return;
        }
        let _ = self
            .command("rm")
            .args(["-rf", "--one-file-system", "--"])
            .arg(path)
            .status();
    }
}
