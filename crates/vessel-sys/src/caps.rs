//! Linux capabilities, for real root's containers (`--keep-privs`,
//! `--no-privs`, `--add-caps`, `--drop-caps`): names read as Apptainer
//! reads them, and the payload's sets limited just before it execs.
//!
//! The calls go through the `caps` crate (prctl and capset); this module
//! decides the order, which is what makes them work: the bounding set
//! first (dropping from it needs `CAP_SETPCAP`, still effective then),
//! then inheritable and ambient (ambient needs the capability permitted
//! and inheritable), effective and permitted last, as they can only shrink.

use std::collections::HashSet;

use caps::CapSet;
pub use caps::Capability;

use crate::{Result, SysError};

/// Every capability Vessel knows, in kernel order.
pub fn all() -> Vec<Capability> {
    let mut all: Vec<Capability> = caps::all().into_iter().collect();
    all.sort_by_key(|c| c.index());
    all
}

/// One capability by name, as Apptainer reads it: any case, with or
/// without `CAP_` (`net_raw`, `CAP_NET_RAW`). `None` when unknown.
pub fn by_name(name: &str) -> Option<Capability> {
    caps::to_canonical(name.trim()).parse().ok()
}

/// `CAP_NET_RAW` for [`Capability::CAP_NET_RAW`].
pub fn name(cap: Capability) -> String {
    cap.to_string()
}

fn fail(what: &str, e: caps::errors::CapsError) -> SysError {
    SysError::new(what.to_string(), std::io::Error::other(e.to_string()))
}

/// Limits this thread's capabilities to `keep`, in every set: bounding,
/// inheritable, ambient, effective and permitted. What this process does
/// not hold (capabilities this kernel does not know, or that a container
/// around Vessel took from root) cannot be given: they are left out of
/// `keep` rather than refused. Needs `CAP_SETPCAP` (real root has it).
pub fn limit_to(keep: &[Capability]) -> Result<()> {
    let supported = caps::runtime::thread_all_supported();
    let bounding =
        caps::read(None, CapSet::Bounding).map_err(|e| fail("reading the bounding set", e))?;
    let permitted = caps::read(None, CapSet::Permitted)
        .map_err(|e| fail("reading the permitted capabilities", e))?;
    let keep: HashSet<Capability> = keep
        .iter()
        .copied()
        .filter(|c| supported.contains(c) && bounding.contains(c) && permitted.contains(c))
        .collect();
    // Only what is there is dropped: a root without CAP_SETPCAP (in a
    // container of its own) keeps all it has without having to drop any.
    for cap in bounding.iter().filter(|c| !keep.contains(c)) {
        caps::drop(None, CapSet::Bounding, *cap)
            .map_err(|e| fail(&format!("dropping {cap} from the bounding set"), e))?;
    }
    caps::set(None, CapSet::Inheritable, &keep)
        .map_err(|e| fail("setting the inheritable capabilities", e))?;
    // Ambient capabilities need Linux 4.3; without them root's exec
    // still gets its bounding set, which is what matters for root.
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::set(None, CapSet::Ambient, &keep)
            .map_err(|e| fail("setting the ambient capabilities", e))?;
    }
    caps::set(None, CapSet::Effective, &keep)
        .map_err(|e| fail("setting the effective capabilities", e))?;
    caps::set(None, CapSet::Permitted, &keep)
        .map_err(|e| fail("setting the permitted capabilities", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_apptainer_reads_them() {
        for n in ["CAP_NET_RAW", "net_raw", "Cap_Net_Raw", " NET_RAW "] {
            assert_eq!(by_name(n), Some(Capability::CAP_NET_RAW), "{n}");
        }
        assert_eq!(by_name("CAP_NOPE"), None);
        assert_eq!(name(Capability::CAP_SYS_ADMIN), "CAP_SYS_ADMIN");
        let all = all();
        assert_eq!(all[0], Capability::CAP_CHOWN);
        assert!(all.windows(2).all(|w| w[0].index() < w[1].index()));
    }
}
