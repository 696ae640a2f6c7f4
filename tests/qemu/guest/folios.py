#!/usr/bin/env python3
"""folios.py MOUNT: the page cache's large folios on a mounted arborfs.

- A small write into a file read through readahead (large folios) is
  written back as itself, not as the whole folio around it: its extent is
  the write's 4 KiB.
- Large reads and writes across folio boundaries, unaligned, read back.
`folios.py MOUNT race`: stable writes. Stores through a mapping race the
writeback of their folios (writeback checksums and writes the folios in
place), and the file system shuts down meanwhile: after a remount (rw.sh)
every extent the fsyncs committed must match its checksum.
Exits non-zero with a message on the first failure.
"""
import fcntl
import mmap
import os
import random
import signal
import struct
import sys
import time

from fiemap import fiemap

MNT = sys.argv[1]
MIB = 1 << 20


def fail(msg):
    sys.exit(f"folios: {msg}")


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def read_file(p):
    with open(p, "rb") as f:
        return f.read()


def race(mnt):
    """Stores through a shared mapping racing the writeback of their folios
    (fsyncs here while a child stores), then, with the child still storing,
    a shutdown that writes nothing more: the extents the last fsyncs
    committed must match their checksums (rw.sh remounts and reads)."""
    p = f"{mnt}/stable"
    fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, os.urandom(4 * MIB), 0)
    os.fsync(fd)
    child = os.fork()
    if child == 0:
        m = mmap.mmap(fd, 4 * MIB)
        noise = os.urandom(MIB)
        for i in range(1 << 40):
            at = (i * 40961) % (3 * MIB)
            m[at:at + 256 * 1024] = noise[i % 4096:i % 4096 + 256 * 1024]
    deadline = time.monotonic() + 1
    while time.monotonic() < deadline:
        os.fsync(fd)
    fcntl.ioctl(fd, 0x8004587D, struct.pack("I", 2))  # XFS_IOC_GOINGDOWN, NOLOGFLUSH
    os.kill(child, signal.SIGKILL)
    os.waitpid(child, 0)
    os.close(fd)


if len(sys.argv) > 2 and sys.argv[2] == "race":
    race(MNT)
    sys.exit(0)


rng = random.Random(42)

# A small write into a cached large folio writes only itself.
p = f"{MNT}/cached"
data = bytearray(rng.randbytes(16 * MIB))
with open(p, "wb") as f:
    f.write(data)
drop_caches()
if read_file(p) != data:
    fail("cached: read back wrong")
fd = os.open(p, os.O_RDWR)
small = rng.randbytes(4096)
at = 5 * MIB + 8192
os.pwrite(fd, small, at)
os.fsync(fd)
os.close(fd)
data[at:at + 4096] = small
ext = [e for e in fiemap(p) if e[0] <= at < e[0] + e[2]]
if not ext or ext[0][0] != at or ext[0][2] != 4096:
    fail(f"a 4 KiB write into a cached large folio was written as {ext}")
drop_caches()
if read_file(p) != data:
    fail("cached: wrong after the small write")

# Unaligned large I/O across folio boundaries.
p = f"{MNT}/unaligned"
want = bytearray()
with open(p, "wb") as f:
    for i in range(40):
        piece = rng.randbytes(rng.randrange(1, 700 * 1024))
        f.write(piece)
        want += piece
fd = os.open(p, os.O_RDWR)
for i in range(40):
    off = rng.randrange(0, len(want))
    piece = rng.randbytes(rng.randrange(1, 900 * 1024))
    os.pwrite(fd, piece, off)
    end = off + len(piece)
    if end > len(want):
        want += bytes(end - len(want))
    want[off:end] = piece
os.close(fd)
if read_file(p) != want:
    fail("unaligned: read back wrong from the cache")
drop_caches()
if read_file(p) != want:
    fail("unaligned: read back wrong from the disk")
print("folios: ok")
