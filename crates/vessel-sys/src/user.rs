//! The user database (through NSS, so LDAP and SSSD users are found too).

use std::ffi::CStr;

/// One `passwd` entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PasswdEntry {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
}

/// One `group` entry, without its member list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    pub name: String,
    pub gid: u32,
}

fn text(p: *const libc::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null pointers here come from a passwd/group record that
    // getpwuid_r/getgrgid_r filled with NUL-terminated strings in `buf`,
    // which outlives this call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// The user with this uid, if the system knows one.
pub fn passwd_by_uid(uid: u32) -> Option<PasswdEntry> {
    // SAFETY: getpwuid_r writes the record into `pw` with strings inside
    // the buffer, whose length it is told, and sets `result`.
    passwd_lookup(|pw, buf, len, result| unsafe { libc::getpwuid_r(uid, pw, buf, len, result) })
}

/// The user named `name`, if the system knows one.
pub fn passwd_by_name(name: &str) -> Option<PasswdEntry> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: as getpwuid_r; `name` is NUL-terminated and outlives the call.
    passwd_lookup(|pw, buf, len, result| unsafe {
        libc::getpwnam_r(name.as_ptr(), pw, buf, len, result)
    })
}

/// A `getpw*_r` call, `call(pw, buf, len, result)`, with a buffer grown
/// until the record fits.
fn passwd_lookup(
    call: impl Fn(*mut libc::passwd, *mut libc::c_char, usize, *mut *mut libc::passwd) -> libc::c_int,
) -> Option<PasswdEntry> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: passwd is plain data, valid zeroed; `call` fills it (and
        // points `result` at it) with strings inside `buf`, whose length
        // it is told.
        let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = call(&mut pw, buf.as_mut_ptr().cast(), buf.len(), &mut result);
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        return Some(PasswdEntry {
            name: text(pw.pw_name),
            uid: pw.pw_uid,
            gid: pw.pw_gid,
            gecos: text(pw.pw_gecos),
            home: text(pw.pw_dir),
            shell: text(pw.pw_shell),
        });
    }
}

/// The group with this gid, if the system knows one.
pub fn group_by_gid(gid: u32) -> Option<GroupEntry> {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: as for getpwuid_r above.
        let (rc, found, gr) = unsafe {
            let mut gr: libc::group = std::mem::zeroed();
            let mut result: *mut libc::group = std::ptr::null_mut();
            let rc = libc::getgrgid_r(
                gid,
                &mut gr,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            (rc, !result.is_null(), gr)
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || !found {
            return None;
        }
        return Some(GroupEntry {
            name: text(gr.gr_name),
            gid: gr.gr_gid,
        });
    }
}

/// The supplementary groups of the calling process.
pub fn groups() -> Vec<u32> {
    rustix::process::getgroups()
        .map(|g| g.into_iter().map(|g| g.as_raw()).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_by_name_and_uid_agree() {
        let root = passwd_by_name("root").expect("every system has root");
        assert_eq!(root.uid, 0);
        assert_eq!(passwd_by_uid(0), Some(root));
        assert_eq!(passwd_by_name("no-such-user-anywhere"), None);
        assert_eq!(passwd_by_name("nul\0inside"), None);
    }
}
