#!/usr/bin/env python3
"""Prints every directory's listing under ROOT as the file system gives it
(entry order, names and types, `.` and `..` included), read one entry per
getdents64 call so that each call resumes at the previous entry's offset:
on a FUSE mount whose directory is not yet in the kernel's cache, every
call is a request to the server at that offset. Then, on the same open
directory, seeks back to every offset handed out and checks that the
listing resumes with the entry that followed it, and that reading on from
the middle gives the rest; a difference is printed as a BAD line. Two file
systems holding the same tree print the same text."""
import ctypes
import errno
import os
import stat
import struct
import sys

libc = ctypes.CDLL(None, use_errno=True)
SYS_getdents64 = 217  # x86_64
BIG = 1 << 16


def getdents(fd, size):
    """The entries one getdents64 call of SIZE bytes returns, as (offset
    after the entry, type, name); None when SIZE cannot hold the next one."""
    buf = ctypes.create_string_buffer(size)
    n = libc.syscall(SYS_getdents64, fd, buf, size)
    if n < 0:
        e = ctypes.get_errno()
        if e == errno.EINVAL:
            return None
        raise OSError(e, os.strerror(e))
    raw, out, at = buf.raw[:n], [], 0
    while at < n:
        _ino, off, reclen, kind = struct.unpack_from("<QqHB", raw, at)
        name = raw[at + 19 : at + reclen].split(b"\0", 1)[0]
        out.append((off, kind, name))
        at += reclen
    return out


def one(fd):
    """The next entry alone ([] at the end): the smallest buffer that holds
    it (record lengths are multiples of 8, so it holds no second one)."""
    size = 24
    while True:
        got = getdents(fd, size)
        if got is not None:
            return got
        size += 8


def rest(fd):
    out = []
    while True:
        got = getdents(fd, BIG)
        if not got:
            return out
        out.extend(got)


def check(path, rel):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        listing = []
        while True:
            got = one(fd)
            if not got:
                break
            listing.extend(got)
        for kind_name in listing:
            print(f"{rel or '/'}\t{kind_name[1]}\t{os.fsdecode(kind_name[2])}")
        offsets = [0] + [off for off, _, _ in listing]
        for i, off in enumerate(offsets):
            os.lseek(fd, off, os.SEEK_SET)
            want = [(k, n) for _, k, n in listing[i : i + 1]]
            got = [(k, n) for _, k, n in one(fd)]
            if got != want:
                print(f"BAD {rel or '/'}: after offset #{i} came {got}, not {want}")
        middle = len(listing) // 2
        os.lseek(fd, offsets[middle], os.SEEK_SET)
        got = [(k, n) for _, k, n in rest(fd)]
        want = [(k, n) for _, k, n in listing[middle:]]
        if got != want:
            print(f"BAD {rel or '/'}: the rest from entry #{middle} differs")
        return [n for _, k, n in listing if k == 4 and n not in (b".", b"..")]
    finally:
        os.close(fd)


def walk(root):
    todo = [b""]
    while todo:
        rel = todo.pop()
        path = os.path.join(root, rel) if rel else root
        subdirs = check(path, os.fsdecode(rel))
        for name in sorted(subdirs, reverse=True):
            sub = os.path.join(rel, name) if rel else name
            # A directory whose d_type says so but is not one is a
            # difference the listing already shows; do not descend.
            if stat.S_ISDIR(os.lstat(os.path.join(root, sub)).st_mode):
                todo.append(sub)


walk(os.fsencode(sys.argv[1]))
