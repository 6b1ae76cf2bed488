//! Who the image's files are shown as, through the FUSE driver.
//!
//! The container's user namespace maps only some ids: the user's own, or
//! root and a subordinate range under fake root. The kernel turns any
//! other owner into an invalid id, and then refuses to delete, rename or
//! copy up the file (`EOVERFLOW`, "Value too large for defined data
//! type"), which breaks every change to an image file under
//! `--writable-tmpfs` and `--overlay`. So an owner the namespace cannot
//! map is shown as the container's user, as Apptainer's `squashfuse -o
//! uid=,gid=` shows every file; owners it maps (all of them under fake
//! root with subordinate ids) stay the image's own, so `apt-get` sees
//! `_apt` and `man` where the image has them.
//!
//! A file the image keeps from other users (no read permission for
//! "other", like `/etc/shadow`) would become readable once shown as the
//! user's. It keeps the access the user had before the change: its owner
//! and group permissions are shown as its "other" ones, so it stays
//! unreadable, as on a kernel mount of the image, yet the user, now its
//! owner, may delete or replace it in a writable layer.

use std::ops::Range;

/// The ids a user namespace maps, as seen inside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdRanges(Vec<Range<u64>>);

impl IdRanges {
    /// Parses `/proc/self/uid_map` or `gid_map` ("inside outside count"
    /// per line).
    pub fn parse(map: &str) -> IdRanges {
        IdRanges(
            map.lines()
                .filter_map(|line| {
                    let mut f = line.split_whitespace().map(|n| n.parse::<u64>().ok());
                    let inside = f.next()??;
                    let _outside = f.next()??;
                    let count = f.next()??;
                    Some(inside..inside + count)
                })
                .collect(),
        )
    }

    fn contains(&self, id: u32) -> bool {
        self.0.iter().any(|r| r.contains(&u64::from(id)))
    }
}

/// The current process's user namespace mapping, read once at mount time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owners {
    uids: IdRanges,
    gids: IdRanges,
    /// The container's user (root under fake root), who unmapped owners
    /// are shown as.
    user: (u32, u32),
}

impl Owners {
    pub fn new(uids: IdRanges, gids: IdRanges, user: (u32, u32)) -> Owners {
        Owners { uids, gids, user }
    }

    /// The mapping of the calling process's namespace, for `user`.
    pub fn of_this_namespace(user: (u32, u32)) -> std::io::Result<Owners> {
        let read = |p| std::fs::read_to_string(p).map(|s| IdRanges::parse(&s));
        Ok(Owners::new(
            read("/proc/self/uid_map")?,
            read("/proc/self/gid_map")?,
            user,
        ))
    }

    /// The owner and permission bits to show for an entry of the image
    /// owned by `uid`/`gid` with `mode`'s permission bits (`0o7777`).
    pub fn show(&self, uid: u32, gid: u32, perm: u16, is_dir_or_link: bool) -> (u32, u32, u16) {
        let uid_mapped = self.uids.contains(uid);
        let shown_uid = if uid_mapped { uid } else { self.user.0 };
        let shown_gid = if self.gids.contains(gid) {
            gid
        } else {
            self.user.1
        };
        let other = perm & 0o7;
        let hidden_from_others = other & 0o4 == 0;
        // Root reads everything anyway; a directory stays enterable, as
        // Apptainer shows root's directories, so that mount points can be
        // made in it.
        let perm = if !uid_mapped && hidden_from_others && !is_dir_or_link && self.user.0 != 0 {
            (perm & 0o7000) | (other << 6) | (other << 3) | other
        } else {
            perm
        };
        (shown_uid, shown_gid, perm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_only() -> Owners {
        Owners::new(
            IdRanges::parse("      1002       1002          1\n"),
            IdRanges::parse("      1002       1002          1\n"),
            (1002, 1002),
        )
    }

    #[test]
    fn id_maps_parse_as_proc_prints_them() {
        let r =
            IdRanges::parse("         0       1002          1\n         1     100000      65536\n");
        assert!(r.contains(0) && r.contains(1) && r.contains(65536));
        assert!(!r.contains(65537));
        let all = IdRanges::parse("0 0 4294967295\n");
        assert!(all.contains(0) && all.contains(4_294_967_294));
    }

    #[test]
    fn unmapped_owners_become_the_user_with_their_modes() {
        let o = user_only();
        assert_eq!(o.show(0, 0, 0o644, false), (1002, 1002, 0o644));
        assert_eq!(o.show(0, 0, 0o4755, false), (1002, 1002, 0o4755));
        assert_eq!(o.show(1002, 0, 0o600, false), (1002, 1002, 0o600));
    }

    #[test]
    fn root_only_files_stay_unreadable_for_the_user() {
        let o = user_only();
        assert_eq!(o.show(0, 42, 0o640, false), (1002, 1002, 0o000));
        assert_eq!(o.show(0, 0, 0o711, false), (1002, 1002, 0o111));
        // Their own files are theirs; directories stay enterable.
        assert_eq!(o.show(1002, 1002, 0o600, false), (1002, 1002, 0o600));
        assert_eq!(o.show(0, 0, 0o700, true), (1002, 1002, 0o700));
    }

    #[test]
    fn fake_root_keeps_the_owners_it_maps() {
        let sub = Owners::new(
            IdRanges::parse("0 1002 1\n1 100000 65536\n"),
            IdRanges::parse("0 1002 1\n1 100000 65536\n"),
            (0, 0),
        );
        assert_eq!(sub.show(42, 42, 0o640, false), (42, 42, 0o640));
        assert_eq!(sub.show(70000, 70000, 0o600, false), (0, 0, 0o600));
        let root_only = Owners::new(
            IdRanges::parse("0 1002 1\n"),
            IdRanges::parse("0 1002 1\n"),
            (0, 0),
        );
        assert_eq!(root_only.show(42, 42, 0o640, false), (0, 0, 0o640));
    }
}
