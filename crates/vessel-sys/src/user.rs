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
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: passwd is plain data; getpwuid_r writes the record into
        // `pw` with strings inside `buf`, whose length it is told, and sets
        // `result` to `&pw` or null.
        let (rc, found, pw) = unsafe {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwuid_r(
                uid,
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            (rc, !result.is_null(), pw)
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || !found {
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

/// The user named `name`, if the system knows one.
pub fn passwd_by_name(name: &str) -> Option<PasswdEntry> {
    let cname = std::ffi::CString::new(name).ok()?;
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        // SAFETY: as for getpwuid_r above; `cname` is NUL-terminated and
        // outlives the call.
        let (rc, found, pw) = unsafe {
            let mut pw: libc::passwd = std::mem::zeroed();
            let mut result: *mut libc::passwd = std::ptr::null_mut();
            let rc = libc::getpwnam_r(
                cname.as_ptr(),
                &mut pw,
                buf.as_mut_ptr().cast(),
                buf.len(),
                &mut result,
            );
            (rc, !result.is_null(), pw)
        };
        if rc == libc::ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc != 0 || !found {
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
