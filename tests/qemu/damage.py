#!/usr/bin/env python3
"""damage.py IMAGE KIND [ARG]: make bad input for mount tests.
KIND: superblocks (break every copy), version N (claim format version N,
checksum kept valid), byte OFFSET (flip one byte)."""
import struct, sys

SB_OFFSETS = (4096, 128 * 1024, 512 * 1024)

def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF

img, kind = sys.argv[1], sys.argv[2]
with open(img, "r+b") as f:
    if kind == "superblocks":
        for off in SB_OFFSETS:
            f.seek(off + 100); f.write(b"\xde\xad\xbe\xef")
    elif kind == "version":
        for off in SB_OFFSETS:
            f.seek(off); sb = bytearray(f.read(4096))
            struct.pack_into("<I", sb, 12, int(sys.argv[3]))
            struct.pack_into("<I", sb, 8, crc32c(bytes(sb[12:])))
            f.seek(off); f.write(sb)
    elif kind == "byte":
        off = int(sys.argv[3]); f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0xFF]))
    else:
        sys.exit("unknown kind " + kind)
