//! GPUs: whether the host's NVIDIA or AMD driver is there for `--nv` and
//! `--rocm`, found as those options find it (the linker cache, the
//! vendor's list, the device nodes). A node without GPUs is normal, so
//! this never fails.

use std::path::Path;

use crate::gpu::driver::{self, Visible};
use crate::gpu::ldcache::LdCache;
use crate::gpu::liblist::{LibList, Vendor};

use super::{Finding, Node};

pub(super) fn checks(node: &Node<'_>) -> Vec<Finding> {
    let cache = LdCache::read(Path::new("/etc/ld.so.cache")).ok();
    let host = driver::Host {
        root: Path::new("/"),
        ld_cache: cache.as_ref(),
    };
    let visible = Visible::from_vars(node.get);
    let conf_dir = vessel_config::conf::conf_dir().ok();
    [
        (Vendor::Nvidia, "NVIDIA GPUs", "NVIDIA"),
        (Vendor::Amd, "AMD GPUs", "AMD ROCm"),
    ]
    .into_iter()
    .map(|(vendor, check, what)| {
        let list = match conf_dir.as_deref().map(|d| LibList::load(vendor, d)) {
            Some(Ok(list)) => list,
            Some(Err(e)) => {
                return Finding::warn(
                    check,
                    vessel_sys::error_chain(&e),
                    format!("an administrator: correct or remove {}", vendor.list_name()),
                )
            }
            // The configuration check reports why the directory is refused.
            None => return Finding::info(check, "not looked for: see the configuration check"),
        };
        let found = driver::find(vendor, &list, &host, false, &visible);
        if found.is_empty() {
            return Finding::info(
                check,
                format!(
                    "no {what} driver on this node ({} adds nothing)",
                    vendor.option()
                ),
            );
        }
        if found.devices.is_empty() {
            return Finding::info(
                check,
                format!(
                    "{} {what} libraries but no GPU device ({}): containers get no {what} GPU",
                    found.libs.len(),
                    match vendor {
                        Vendor::Nvidia => "/dev/nvidiactl",
                        Vendor::Amd => "/dev/kfd",
                    }
                ),
            );
        }
        let devices: Vec<String> = found
            .devices
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        Finding::pass(
            check,
            format!(
                "{what} driver: {} libraries, {} programs, devices {}: {} gives them to containers",
                found.libs.len(),
                found.programs.len(),
                devices.join(" "),
                vendor.option()
            ),
        )
    })
    .collect()
}
