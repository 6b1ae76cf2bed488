//! FUSE over io_uring (Linux 6.14+, where the admin has set the `fuse`
//! module's `enable_uring`): the kernel hands each request to a ring entry
//! of the queue of the CPU the requesting process runs on, and the server
//! thread pinned to that CPU answers it. A metadata round trip then stays
//! on one CPU: no cross-CPU wake-up of a server thread, and none of the
//! requester when the answer comes (on a VM each of those is an exit to
//! the hypervisor, issue 20).
//!
//! Written by hand over the `io-uring` crate: no crate serves FUSE over
//! io_uring (fuser 0.18 reads `/dev/fuse` only). The layouts are the
//! kernel's `fuse_uring_req_header`, `fuse_uring_ent_in_out` and
//! `fuse_uring_cmd_req` (include/uapi/linux/fuse.h, ABI 7.42).

use std::os::fd::{AsRawFd, OwnedFd};

use io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::{Context, Result, SysError};

const CMD_REGISTER: u32 = 1;
const CMD_COMMIT_AND_FETCH: u32 = 2;
/// `fuse_out_header`: len, error, unique.
const OUT_HEADER: usize = 16;
/// Offset of `fuse_uring_ent_in_out` in the header buffer.
const ENT_IN_OUT: usize = 256;
/// An SQE's `len`, at this offset of its 128 bytes, carries the number
/// of iovecs of a REGISTER (the `io-uring` crate's `UringCmd80` has no
/// field for it).
const SQE_LEN: usize = 24;

/// `fuse_uring_req_header`: the in or out header, the opcode's fixed
/// argument, and `fuse_uring_ent_in_out` (flags, commit id, payload size).
#[repr(C, align(8))]
struct Header([u8; 288]);

/// One ring entry: the buffers the kernel writes a request into and reads
/// the answer from, registered once and reused.
struct Slot {
    header: Box<Header>,
    payload: Box<[u8]>,
    iov: Box<[libc::iovec; 2]>,
    qid: u16,
    /// The commit id of the request being answered; 0 before the first.
    commit_id: u64,
}

/// A request as the kernel gave it.
pub struct Request<'a> {
    pub opcode: u32,
    pub unique: u64,
    pub nodeid: u64,
    /// The opcode's fixed argument (`fuse_read_in`, …), zeros where it has none.
    pub fixed: &'a [u8],
    /// What follows it: names, for instance.
    pub payload: &'a [u8],
}

/// The ring entries of one or more FUSE queues, served by one thread.
pub struct Ring {
    ring: IoUring<squeue::Entry128, cqueue::Entry>,
    dev: OwnedFd,
    slots: Vec<Slot>,
}

fn ne_u32(b: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn ne_u64(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_ne_bytes(x)
}

fn command(qid: u16, commit_id: u64) -> [u8; 80] {
    let mut cmd = [0u8; 80];
    cmd[8..16].copy_from_slice(&commit_id.to_ne_bytes());
    cmd[16..18].copy_from_slice(&qid.to_ne_bytes());
    cmd
}

impl Ring {
    /// Registers entries with room for `payload` bytes on FUSE connection
    /// `dev` (a duplicate of the session's descriptor, after FUSE_INIT was
    /// answered with FUSE_OVER_IO_URING): for each `(queue, depth)` of
    /// `queues`, `depth` entries. The kernel switches the connection to
    /// the rings once every queue has an entry.
    pub fn register(dev: OwnedFd, queues: &[(u16, usize)], payload: usize) -> Result<Ring> {
        let count: usize = queues.iter().map(|&(_, d)| d).sum();
        let entries = u32::try_from(count.next_power_of_two()).unwrap_or(u32::MAX);
        let ring = IoUring::<squeue::Entry128, cqueue::Entry>::builder()
            .build(entries)
            .op(|| "creating an io_uring for FUSE".into())?;
        let mut slots = Vec::with_capacity(count);
        for &(qid, depth) in queues {
            for _ in 0..depth {
                let mut header = Box::new(Header([0u8; 288]));
                let mut payload = vec![0u8; payload].into_boxed_slice();
                let iov = Box::new([
                    libc::iovec {
                        iov_base: header.0.as_mut_ptr().cast(),
                        iov_len: header.0.len(),
                    },
                    libc::iovec {
                        iov_base: payload.as_mut_ptr().cast(),
                        iov_len: payload.len(),
                    },
                ]);
                slots.push(Slot {
                    header,
                    payload,
                    iov,
                    qid,
                    commit_id: 0,
                });
            }
        }
        let mut ring = Ring { ring, dev, slots };
        for i in 0..ring.slots.len() {
            ring.queue(i)?;
        }
        ring.ring
            .submit()
            .op(|| "registering FUSE ring entries".into())?;
        Ok(ring)
    }

    /// Puts slot `i`'s next command on the submission queue: its
    /// registration, or the answer to its request with the fetch of the
    /// next one.
    fn queue(&mut self, i: usize) -> Result<()> {
        let slot = &self.slots[i];
        let fd = types::Fd(self.dev.as_raw_fd());
        let entry = if slot.commit_id == 0 {
            let sqe = opcode::UringCmd80::new(fd, CMD_REGISTER)
                .cmd(command(slot.qid, 0))
                .addr(Some(slot.iov.as_ptr() as u64))
                .build()
                .user_data(i as u64);
            with_len(sqe, 2)
        } else {
            opcode::UringCmd80::new(fd, CMD_COMMIT_AND_FETCH)
                .cmd(command(slot.qid, slot.commit_id))
                .build()
                .user_data(i as u64)
        };
        // SAFETY: the entry's buffers (header, payload, iovecs) are owned by
        // `self.slots`, which are never resized after registration and are
        // never freed (see `Drop`), so the kernel never writes to freed
        // memory.
        unsafe { self.ring.submission().push(&entry) }.map_err(|_| {
            SysError::new(
                "queueing a FUSE ring command",
                std::io::Error::from_raw_os_error(libc::EBUSY),
            )
        })
    }

    /// Answers requests until the connection ends (unmounted, or the
    /// server aborted): `handle` reads a request and writes its answer
    /// into the buffer it is given, returning the answer's length or an
    /// errno.
    pub fn serve(
        &mut self,
        mut handle: impl FnMut(&Request, &mut [u8]) -> std::result::Result<usize, i32>,
    ) -> Result<()> {
        let mut done: Vec<(usize, i32)> = Vec::with_capacity(self.slots.len());
        let mut input: Vec<u8> = Vec::new();
        loop {
            match self.ring.submit_and_wait(1) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) => return Err(SysError::new("waiting for FUSE requests", e)),
            }
            done.clear();
            done.extend(
                self.ring
                    .completion()
                    .map(|c| (c.user_data() as usize, c.result())),
            );
            for &(i, res) in &done {
                if i >= self.slots.len() {
                    continue;
                }
                if res < 0 {
                    match -res {
                        libc::EINTR | libc::EAGAIN => {
                            self.queue(i)?;
                            continue;
                        }
                        // Unmounted, or the connection aborted.
                        libc::ENOTCONN | libc::ENODEV => return Ok(()),
                        e => {
                            return Err(SysError::new(
                                if self.slots[i].commit_id == 0 {
                                    "registering a FUSE ring entry"
                                } else {
                                    "answering a FUSE request"
                                },
                                std::io::Error::from_raw_os_error(e),
                            ))
                        }
                    }
                }
                let slot = &mut self.slots[i];
                let h = &slot.header.0;
                let commit_id = ne_u64(h, ENT_IN_OUT + 8);
                let size = (ne_u32(h, ENT_IN_OUT + 16) as usize).min(slot.payload.len());
                let unique = ne_u64(h, 8);
                input.clear();
                input.extend_from_slice(&slot.payload[..size]);
                let request = Request {
                    opcode: ne_u32(h, 4),
                    unique,
                    nodeid: ne_u64(h, 16),
                    fixed: &h[128..256],
                    payload: &input,
                };
                let (error, len) = match handle(&request, &mut slot.payload) {
                    Ok(n) => (0, n.min(slot.payload.len())),
                    Err(e) => (-e, 0),
                };
                let h = &mut slot.header.0;
                h[0..4].copy_from_slice(&((OUT_HEADER + len) as u32).to_ne_bytes());
                h[4..8].copy_from_slice(&error.to_ne_bytes());
                h[8..16].copy_from_slice(&unique.to_ne_bytes());
                h[ENT_IN_OUT + 16..ENT_IN_OUT + 20].copy_from_slice(&(len as u32).to_ne_bytes());
                slot.commit_id = commit_id;
                self.queue(i)?;
            }
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // The kernel may still be cancelling the entries' commands after
        // the ring's descriptor is closed: their buffers stay (a ring is
        // dropped once, when its thread ends with the connection).
        std::mem::forget(std::mem::take(&mut self.slots));
    }
}

/// Sets the `len` field of a 128-byte SQE.
fn with_len(entry: squeue::Entry128, len: u32) -> squeue::Entry128 {
    // SAFETY: `Entry128` is `#[repr(C)]` over the kernel's 128-byte SQE
    // (a 64-byte `io_uring_sqe` and its 64-byte extension), plain data with
    // no invalid bit patterns, so it may be viewed as bytes and back.
    let mut bytes: [u8; 128] = unsafe { std::mem::transmute(entry) };
    bytes[SQE_LEN..SQE_LEN + 4].copy_from_slice(&len.to_ne_bytes());
    // SAFETY: as above; only the `len` field changed.
    unsafe { std::mem::transmute::<[u8; 128], squeue::Entry128>(bytes) }
}

/// Whether this process may make an io_uring (kernels may turn them off
/// with `kernel.io_uring_disabled`, container runtimes with seccomp).
pub fn available() -> bool {
    IoUring::<squeue::Entry128, cqueue::Entry>::builder()
        .build(1)
        .is_ok()
}

/// The number of CPUs the kernel may ever bring up (its FUSE queues are
/// one per possible CPU): from `/sys/devices/system/cpu/possible`.
pub fn possible_cpus() -> Result<usize> {
    let text = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .op(|| "reading /sys/devices/system/cpu/possible".into())?;
    let last = text
        .trim()
        .split(',')
        .filter_map(|r| r.rsplit('-').next()?.trim().parse::<usize>().ok())
        .max();
    last.map(|n| n + 1).ok_or_else(|| {
        SysError::new(
            "reading /sys/devices/system/cpu/possible",
            std::io::Error::from_raw_os_error(libc::EINVAL),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_command_layouts() {
        assert_eq!(std::mem::size_of::<Header>(), 288);
        assert_eq!(std::mem::size_of::<squeue::Entry128>(), 128);
        let cmd = command(3, 0x1122);
        assert_eq!(&cmd[8..16], &0x1122u64.to_ne_bytes());
        assert_eq!(&cmd[16..18], &3u16.to_ne_bytes());
        assert!(cmd[..8].iter().chain(&cmd[18..]).all(|&b| b == 0));
    }

    #[test]
    fn possible_cpus_counts_this_machine() {
        assert!(possible_cpus().unwrap() >= 1);
    }
}
