#!/usr/bin/env python3
"""Prints one line per entry under ROOT, sorted by path: type, mode, owner,
size, mtime, link count, link target or content digest, and xattrs. Two
trees print the same text when they hold the same files with the same
metadata (directory sizes are left out: they depend on the file system)."""
import errno
import hashlib
import os
import stat
import sys

root = sys.argv[1]
lines = []
for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in sorted(dirnames + filenames) + ([] if dirpath != root else ["."]):
        path = os.path.normpath(os.path.join(dirpath, name))
        st = os.lstat(path)
        rel = "/" + os.path.relpath(path, root).lstrip(".")
        kind = stat.S_IFMT(st.st_mode)
        extra = ""
        size = st.st_size
        if stat.S_ISLNK(st.st_mode):
            extra = "-> " + os.readlink(path)
        elif stat.S_ISREG(st.st_mode):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            extra = h.hexdigest()
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            extra = f"dev {os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
        if stat.S_ISDIR(st.st_mode):
            size = "-"
        try:
            names = sorted(os.listxattr(path, follow_symlinks=False))
            xattrs = [f"{n}={os.getxattr(path, n, follow_symlinks=False).hex()}" for n in names]
        except OSError as e:
            # A file system that keeps no xattrs may say so (Vessel's FUSE
            # server does, for an image without any): none, as extracted.
            xattrs = [] if e.errno == errno.ENOTSUP else ["?"]
        mtime = int(st.st_mtime) if not stat.S_ISLNK(st.st_mode) else "-"
        lines.append(
            f"{rel} {kind:o} {stat.S_IMODE(st.st_mode):04o} {st.st_uid}:{st.st_gid} "
            f"{size} {mtime} {st.st_nlink if not stat.S_ISDIR(st.st_mode) else '-'} {extra} {' '.join(xattrs)}"
        )
lines.sort()
sys.stdout.write("\n".join(lines) + "\n")
