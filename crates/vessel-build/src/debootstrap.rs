//! The `debootstrap` bootstrap agent: a Debian or Ubuntu root file system
//! made by the real `debootstrap` against the definition's `MirrorURL`, run
//! as (fake) root on the host. In a user namespace device nodes cannot be
//! made, so debootstrap is told it runs in a container (`container=lxc`),
//! where it bind-mounts the host's instead, for its own run only.

use std::path::{Path, PathBuf};

use crate::def::Stage;
use crate::engine::BuildError;
use crate::hostroot::HostRoot;

/// Packages Apptainer's agent leaves out of the minimal base as well, so
/// that the same definition gives the same tree.
const EXCLUDE: &str = "openssl,udev,debconf-i18n,e2fsprogs";
const SYSTEM_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) fn bootstrap(stage: &Stage, rootfs: &Path, host: &HostRoot) -> Result<(), BuildError> {
    let header = |key: &str| stage.get(key).map(str::trim).filter(|v| !v.is_empty());
    let mirror = header("mirrorurl").ok_or(BuildError::NoMirrorUrl)?;
    let suite = header("osversion").ok_or(BuildError::NoOsVersion)?;
    let program = find_debootstrap().ok_or(BuildError::NoDebootstrap)?;
    let arch = debian_arch().ok_or(BuildError::NoDebianArch {
        arch: std::env::consts::ARCH,
    })?;
    if !host.has_subordinate_ids() {
        tracing::warn!(
            "debootstrap needs subordinate ids (package scripts give files to system users), which you do not have: expect it to fail"
        );
    }
    let include: Vec<&str> = std::iter::once("apt")
        .chain(
            header("include")
                .unwrap_or("")
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|p| !p.is_empty()),
        )
        .collect();
    tracing::info!("Running debootstrap: {suite} from {mirror}");
    let mut cmd = host.command(&program);
    cmd.args([
        "--variant=minbase",
        &format!("--exclude={EXCLUDE}"),
        &format!("--include={}", include.join(",")),
        &format!("--arch={arch}"),
        suite,
    ])
    .arg(rootfs)
    .arg(mirror)
    .env("PATH", SYSTEM_PATH);
    if !host.is_real_root() {
        cmd.env("container", "lxc");
    }
    let status = cmd.status().map_err(crate::engine::io(&program))?;
    if !status.success() {
        let log =
            std::fs::read_to_string(rootfs.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        return Err(BuildError::Debootstrap {
            suite: suite.to_string(),
            mirror: mirror.to_string(),
            status,
            log: lines[lines.len().saturating_sub(5)..]
                .iter()
                .map(|l| l.to_string())
                .collect(),
        });
    }
    Ok(())
}

fn find_debootstrap() -> Option<PathBuf> {
    vessel_config::process_var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(std::env::split_paths(SYSTEM_PATH))
        .map(|d| d.join("debootstrap"))
        .find(|p| p.is_file())
}

/// Debian's name for this machine's architecture.
fn debian_arch() -> Option<&'static str> {
    Some(match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "x86" => "i386",
        "aarch64" => "arm64",
        "arm" => "armhf",
        "powerpc64" => "ppc64el",
        "s390x" => "s390x",
        "riscv64" => "riscv64",
        "mips64" => "mips64el",
        "loongarch64" => "loong64",
        _ => return None,
    })
}
