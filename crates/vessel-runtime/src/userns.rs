//! Why the kernel refuses an unprivileged user namespace: the settings
//! that can forbid one, read only once it has refused, and decided in one
//! place for the launch's error and `vessel doctor`'s finding.

use std::path::Path;

/// A sysctl's value, `None` where this kernel does not have it.
pub fn sysctl(name: &str) -> Option<String> {
    let path = Path::new("/proc/sys").join(name.replace('.', "/"));
    std::fs::read_to_string(path)
        .ok()
        .map(|v| v.trim().to_string())
}

/// The likeliest reason for a refusal on this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `user.max_user_namespaces = 0`.
    Disabled,
    /// `kernel.unprivileged_userns_clone = 0` (Debian's older kernels).
    CloneOff,
    /// `kernel.apparmor_restrict_unprivileged_userns = 1` (Ubuntu 23.10+).
    AppArmor,
    /// The namespace limit is reached (`ENOSPC`).
    LimitReached,
    /// None of the above: an old kernel, or a container that forbids them.
    Other,
}

/// Why the kernel refused, the settings checked in this order;
/// `no_space`: the refusal was `ENOSPC`.
pub fn why_refused(no_space: bool) -> Refusal {
    if sysctl("user.max_user_namespaces").as_deref() == Some("0") {
        Refusal::Disabled
    } else if sysctl("kernel.unprivileged_userns_clone").as_deref() == Some("0") {
        Refusal::CloneOff
    } else if sysctl("kernel.apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        Refusal::AppArmor
    } else if no_space {
        Refusal::LimitReached
    } else {
        Refusal::Other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_sysctl_is_none_and_the_limit_is_named() {
        assert_eq!(sysctl("kernel.no_such_setting_here"), None);
        // On a host that allows user namespaces (the tests need them), the
        // reason is the one the caller saw.
        if sysctl("user.max_user_namespaces").as_deref() != Some("0")
            && sysctl("kernel.unprivileged_userns_clone").as_deref() != Some("0")
            && sysctl("kernel.apparmor_restrict_unprivileged_userns").as_deref() != Some("1")
        {
            assert_eq!(why_refused(true), Refusal::LimitReached);
            assert_eq!(why_refused(false), Refusal::Other);
        }
    }
}
