//! Loop devices, for mounting a SIF's SquashFS partition with the kernel's
//! own driver when Vessel runs as real root.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;

use crate::{Result, SysError};

// From <linux/loop.h>, which the libc crate does not carry.
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_SET_STATUS64: libc::c_ulong = 0x4C04;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;

#[repr(C)]
#[derive(Clone, Copy)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// A loop device over part of a file (read-only unless made with
/// [`attach_writable`]); it detaches itself once unmounted and closed
/// (autoclear).
pub struct LoopDevice {
    pub path: PathBuf,
    _device: OwnedFd,
}

/// Attaches bytes `offset..offset+size` of `file` to a free, read-only
/// loop device.
pub fn attach(file: &File, offset: u64, size: u64) -> Result<LoopDevice> {
    attach_with(file, offset, size, false)
}

/// [`attach`], writable (`file` must be open for writing): an ext3
/// overlay image mounted read-write as real root.
pub fn attach_writable(file: &File, offset: u64, size: u64) -> Result<LoopDevice> {
    attach_with(file, offset, size, true)
}

fn attach_with(file: &File, offset: u64, size: u64, writable: bool) -> Result<LoopDevice> {
    let control = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")
        .map_err(|e| SysError::new("opening /dev/loop-control", e))?;
    let mut info = LoopInfo64 {
        device: 0,
        inode: 0,
        rdevice: 0,
        offset,
        sizelimit: size,
        number: 0,
        encrypt_type: 0,
        encrypt_key_size: 0,
        flags: if writable {
            LO_FLAGS_AUTOCLEAR
        } else {
            LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR
        },
        file_name: [0; 64],
        crypt_name: [0; 64],
        encrypt_key: [0; 32],
        init: [0; 2],
    };
    // Another process may take the device between GET_FREE and CONFIGURE:
    // then ask again.
    for _ in 0..32 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a number.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
        if n < 0 {
            return Err(SysError::new(
                "finding a free loop device",
                std::io::Error::last_os_error(),
            ));
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let device = match OpenOptions::new().read(true).write(writable).open(&path) {
            Ok(d) => d,
            Err(e) => return Err(SysError::new(format!("opening {}", path.display()), e)),
        };
        let config = LoopConfig {
            fd: file.as_raw_fd() as u32,
            block_size: 0,
            info,
            reserved: [0; 8],
        };
        // SAFETY: `config` is a properly laid out loop_config that lives
        // across the call; the kernel only reads it.
        let rc = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CONFIGURE as _, &config) };
        if rc == 0 {
            return Ok(LoopDevice {
                path,
                _device: device.into(),
            });
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EBUSY) => continue,
            // Kernels before 5.8: attach, then set the offset and flags.
            Some(libc::EINVAL) | Some(libc::ENOTTY) => {
                // SAFETY: LOOP_SET_FD takes a file descriptor number.
                if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_SET_FD as _, file.as_raw_fd()) }
                    != 0
                {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() == Some(libc::EBUSY) {
                        continue;
                    }
                    return Err(SysError::new("attaching the loop device", e));
                }
                info.number = n as u32;
                // SAFETY: `info` is a loop_info64 that lives across the call.
                if unsafe { libc::ioctl(device.as_raw_fd(), LOOP_SET_STATUS64 as _, &info) } != 0 {
                    let e = std::io::Error::last_os_error();
                    // SAFETY: LOOP_CLR_FD takes no argument.
                    unsafe { libc::ioctl(device.as_raw_fd(), LOOP_CLR_FD as _) };
                    return Err(SysError::new("setting the loop device's offset", e));
                }
                return Ok(LoopDevice {
                    path,
                    _device: device.into(),
                });
            }
            _ => {
                return Err(SysError::new(
                    format!("configuring {}", path.display()),
                    err,
                ))
            }
        }
    }
    Err(SysError::new(
        "finding a free loop device",
        std::io::Error::other("all candidates were taken"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_kernel() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
