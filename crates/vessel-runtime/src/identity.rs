//! `/etc/passwd` and `/etc/group` for the container: the image's own, with
//! the calling user and their groups added, so that `id`, `whoami` and
//! `ls -l` know who runs the container.

use crate::options::Host;

/// The image's passwd file with the user's entry added (when the image
/// does not already have that uid), home pointing at the container's home.
pub fn passwd(image: &str, host: &Host, home: &str) -> String {
    let mut out = image.to_string();
    let has_uid = image
        .lines()
        .any(|l| l.split(':').nth(2) == Some(&host.uid.to_string()));
    if !has_uid {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        let (gecos, shell) = host
            .user
            .as_ref()
            .map(|u| (u.gecos.as_str(), u.shell.as_str()))
            .unwrap_or(("", "/bin/sh"));
        let shell = if shell.is_empty() { "/bin/sh" } else { shell };
        out.push_str(&format!(
            "{}:x:{}:{}:{}:{}:{}\n",
            host.user_name(),
            host.uid,
            host.gid,
            gecos,
            home,
            shell
        ));
    }
    out
}

/// The image's group file with the user's primary and supplementary groups
/// added where the image lacks them.
pub fn group(image: &str, host: &Host) -> String {
    let mut out = image.to_string();
    let user = host.user_name();
    let mut groups: Vec<(String, u32)> = Vec::new();
    let primary = host
        .group
        .as_ref()
        .map(|g| g.name.clone())
        .unwrap_or_else(|| format!("group{}", host.gid));
    groups.push((primary, host.gid));
    groups.extend(host.supplementary.iter().map(|g| (g.name.clone(), g.gid)));
    for (name, gid) in groups {
        let present = out
            .lines()
            .any(|l| l.split(':').nth(2) == Some(&gid.to_string()));
        if present {
            continue;
        }
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&format!("{name}:x:{gid}:{user}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use vessel_sys::user::{GroupEntry, PasswdEntry};

    fn host() -> Host {
        Host {
            uid: 1001,
            gid: 1001,
            groups: vec![1001, 27],
            user: Some(PasswdEntry {
                name: "alice".into(),
                uid: 1001,
                gid: 1001,
                gecos: "Alice".into(),
                home: "/home/alice".into(),
                shell: "/bin/bash".into(),
            }),
            group: Some(GroupEntry {
                name: "alice".into(),
                gid: 1001,
            }),
            supplementary: vec![GroupEntry {
                name: "sudo".into(),
                gid: 27,
            }],
            home: PathBuf::from("/home/alice"),
            cwd: PathBuf::from("/"),
            env: vec![],
            tmpdir: PathBuf::from("/tmp"),
        }
    }

    #[test]
    fn user_is_added_once() {
        let p = passwd("root:x:0:0:root:/root:/bin/sh", &host(), "/home/alice");
        assert_eq!(
            p,
            "root:x:0:0:root:/root:/bin/sh\nalice:x:1001:1001:Alice:/home/alice:/bin/bash\n"
        );
        assert_eq!(passwd(&p, &host(), "/home/alice"), p);
    }

    #[test]
    fn groups_are_added_where_missing() {
        let g = group("root:x:0:\nsudo:x:27:\n", &host());
        assert_eq!(g, "root:x:0:\nsudo:x:27:\nalice:x:1001:alice\n");
    }
}
