"""fiemap.py: FS_IOC_FIEMAP for the guest tests (features.py, folios.py)."""
import fcntl
import os
import struct

FS_IOC_FIEMAP = 0xC020660B
FIEMAP_FLAG_SYNC = 1
FIEMAP_EXTENT_LAST = 0x1
FIEMAP_EXTENT_ENCODED = 0x8
FIEMAP_EXTENT_UNWRITTEN = 0x800


def fiemap(p):
    """[(logical, physical, length, flags)] of the whole file."""
    count = 64
    hdr = struct.pack("=QQIIII", 0, (1 << 64) - 1, FIEMAP_FLAG_SYNC, 0, count, 0)
    buf = bytearray(hdr + bytes(56 * count))
    fd = os.open(p, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_FIEMAP, buf)
    finally:
        os.close(fd)
    mapped = struct.unpack_from("=I", buf, 20)[0]
    out = []
    for i in range(mapped):
        lo, ph, ln, _, _, fl = struct.unpack_from("=QQQQQI", buf, 32 + 56 * i)
        out.append((lo, ph, ln, fl))
    return out
