#!/usr/bin/env python3
"""Guest test of the file interfaces fstests and backup tools probe, on a
mounted arborfs: FIEMAP, collapse and insert range, FS_IOC_FSGETXATTR /
FSSETXATTR (flags and project ids, inheritance), statx (btime, attribute
bits), st_blocks of freshly written sparse files, FS_IOC_GETFSUUID and
FS_IOC_GETFSSYSFSPATH, file handles (name_to_handle_at, open_by_handle_at:
what NFS export uses), idmapped mounts.

usage: features.py MNT DEVICE UUID
"""
import ctypes
import errno
import fcntl
import os
import struct
import subprocess
import sys
import time

mnt, device, want_uuid = sys.argv[1:4]
BLOCK = 4096
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def path(name):
    return os.path.join(mnt, name)


def pattern(n, seed):
    return bytes((i * 7 + seed + (i >> 12)) % 251 for i in range(n))


# ---- FIEMAP ----
from fiemap import FIEMAP_EXTENT_ENCODED, FIEMAP_EXTENT_LAST, FIEMAP_EXTENT_UNWRITTEN, fiemap  # noqa: E402


def test_fiemap(compressed_fs):
    p = path("fiemap")
    with open(p, "wb") as f:
        f.write(pattern(64 * 1024, 1))
        f.seek(256 * 1024)
        f.write(pattern(32 * 1024, 2))
    fd = os.open(p, os.O_RDWR)
    os.posix_fallocate(fd, 512 * 1024, 64 * 1024)
    os.close(fd)
    ext = fiemap(p)
    print(f"fiemap: {ext}")
    check(len(ext) >= 3, "fiemap reports the three extents")
    check(ext and ext[0][0] == 0, "the first extent starts at 0")
    check(ext and ext[-1][3] & FIEMAP_EXTENT_LAST, "the last extent carries FIEMAP_EXTENT_LAST")
    check(all(not e[3] & FIEMAP_EXTENT_LAST for e in ext[:-1]), "only the last extent is LAST")
    check(any(e[3] & FIEMAP_EXTENT_UNWRITTEN and e[0] == 512 * 1024 for e in ext),
          "the preallocated range is UNWRITTEN")
    check(not any(e[0] < 256 * 1024 < e[0] + e[2] and e[0] >= 64 * 1024 for e in ext), "the hole is not mapped")
    check(all(e[1] > 0 for e in ext), "physical addresses are given")
    if compressed_fs:
        q = path("fiemap-text")
        with open(q, "wb") as f:
            f.write(b"very compressible text " * 20000)
        check(any(e[3] & FIEMAP_EXTENT_ENCODED for e in fiemap(q)), "compressed extents are ENCODED")
    # xfs_io's fiemap, as fstests runs it.
    out = subprocess.run(["xfs_io", "-c", "fiemap -v", p], capture_output=True, text=True)
    check(out.returncode == 0 and "hole" in out.stdout, f"xfs_io fiemap works: {out.stdout}{out.stderr}")


# ---- collapse / insert range ----
FALLOC_FL_KEEP_SIZE = 1
FALLOC_FL_COLLAPSE_RANGE = 8
FALLOC_FL_INSERT_RANGE = 0x20
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]


def falloc(fd, mode, off, length):
    if libc.fallocate(fd, mode, off, length) != 0:
        return ctypes.get_errno()
    return 0


def test_collapse_insert():
    p = path("shift")
    data = pattern(40 * BLOCK, 3)
    with open(p, "wb") as f:
        f.write(data)
    fd = os.open(p, os.O_RDWR)
    check(falloc(fd, FALLOC_FL_COLLAPSE_RANGE, 8 * BLOCK, 4 * BLOCK) == 0, "collapse range works")
    want = data[: 8 * BLOCK] + data[12 * BLOCK:]
    check(os.fstat(fd).st_size == len(want), "collapse shrinks the file")
    check(os.pread(fd, len(want) + 10, 0) == want, "collapse moves the data down")
    check(falloc(fd, FALLOC_FL_INSERT_RANGE, 4 * BLOCK, 2 * BLOCK) == 0, "insert range works")
    want = want[: 4 * BLOCK] + bytes(2 * BLOCK) + want[4 * BLOCK:]
    check(os.fstat(fd).st_size == len(want), "insert grows the file")
    check(os.pread(fd, len(want) + 10, 0) == want, "insert moves the data up and leaves a hole")
    # Inside an extent, then at its edges.
    check(falloc(fd, FALLOC_FL_INSERT_RANGE, 5 * BLOCK + 0, BLOCK) == 0, "insert inside a hole")
    want = want[: 5 * BLOCK] + bytes(BLOCK) + want[5 * BLOCK:]
    check(os.pread(fd, len(want) + 10, 0) == want, "the second insert keeps the data")
    # The error rules of ext4 and xfs.
    check(falloc(fd, FALLOC_FL_COLLAPSE_RANGE, 100, BLOCK) == errno.EINVAL, "unaligned collapse is EINVAL")
    check(falloc(fd, FALLOC_FL_INSERT_RANGE, BLOCK, 100) == errno.EINVAL, "unaligned insert is EINVAL")
    size = os.fstat(fd).st_size
    check(falloc(fd, FALLOC_FL_COLLAPSE_RANGE, size - BLOCK, BLOCK) == errno.EINVAL,
          "collapse reaching the end of file is EINVAL")
    check(falloc(fd, FALLOC_FL_INSERT_RANGE, size, BLOCK) == errno.EINVAL, "insert at end of file is EINVAL")
    check(falloc(fd, FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_KEEP_SIZE, 0, BLOCK) == errno.EOPNOTSUPP,
          "collapse with KEEP_SIZE is EOPNOTSUPP (the VFS's rule)")
    check(os.pread(fd, len(want) + 10, 0) == want, "refused shifts leave the cached data alone")
    os.close(fd)
    os.sync()
    # Through the engine, not the page cache.
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")
    with open(p, "rb") as f:
        got = f.read()
    diff = next((i for i in range(min(len(got), len(want))) if got[i] != want[i]), None)
    check(got == want, f"the shifted file reads back after sync: {len(got)} vs {len(want)} bytes, first difference at {diff}")


# ---- FS_IOC_FSGETXATTR / FSSETXATTR ----
FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FS_XFLAG_IMMUTABLE = 0x8
FS_XFLAG_NODUMP = 0x80
FS_XFLAG_PROJINHERIT = 0x200


def fsgetxattr(p):
    fd = os.open(p, os.O_RDONLY)
    try:
        buf = bytearray(28)
        fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf)
        xflags, extsize, nextents, projid, cow = struct.unpack_from("=IIIII", buf)
        return xflags, projid
    finally:
        os.close(fd)


def fssetxattr(p, xflags, projid):
    fd = os.open(p, os.O_RDONLY)
    try:
        fcntl.ioctl(fd, FS_IOC_FSSETXATTR, struct.pack("=IIIII8x", xflags, 0, 0, projid, 0))
    finally:
        os.close(fd)


def test_fsxattr():
    d = path("projdir")
    os.mkdir(d)
    fssetxattr(d, FS_XFLAG_PROJINHERIT, 42)
    check(fsgetxattr(d) == (FS_XFLAG_PROJINHERIT, 42), "a directory keeps its project id and PROJINHERIT")
    f = os.path.join(d, "child")
    open(f, "w").close()
    sub = os.path.join(d, "sub")
    os.mkdir(sub)
    check(fsgetxattr(f)[1] == 42, "new files inherit the project id")
    check(fsgetxattr(sub) == (FS_XFLAG_PROJINHERIT, 42), "new directories inherit id and flag")
    fssetxattr(f, FS_XFLAG_NODUMP, 7)
    check(fsgetxattr(f) == (FS_XFLAG_NODUMP, 7), "FSSETXATTR sets flags and project id")
    out = subprocess.run(["lsattr", "-d", f], capture_output=True, text=True).stdout
    check(out.startswith("------d"), f"lsattr shows nodump: {out}")
    subprocess.run(["chattr", "-d", "+i", f], check=False)
    check(fsgetxattr(f)[0] == FS_XFLAG_IMMUTABLE, "chattr +i shows in FSGETXATTR")
    st = statx(f)
    check(st["attributes"] & STATX_ATTR_IMMUTABLE, "statx reports immutable")
    subprocess.run(["chattr", "-i", f], check=False)
    try:
        fssetxattr(f, 0x1, 0)  # FS_XFLAG_REALTIME: not ours
        failures.append("an unsupported xflag was accepted")
    except OSError:
        pass


# ---- statx ----
STATX_BTIME = 0x800
STATX_ATTR_COMPRESSED = 0x4
STATX_ATTR_IMMUTABLE = 0x10
STATX_ATTR_APPEND = 0x20
STATX_ATTR_NODUMP = 0x40
libc.statx.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_uint, ctypes.c_void_p]


def statx(p):
    buf = ctypes.create_string_buffer(256)
    if libc.statx(-100, p.encode(), 0, 0xFFF, buf) != 0:
        raise OSError(ctypes.get_errno(), "statx")
    mask, _, attributes = struct.unpack_from("=IIQ", buf.raw, 0)
    blocks = struct.unpack_from("=Q", buf.raw, 48)[0]
    amask = struct.unpack_from("=Q", buf.raw, 56)[0]
    btime_s, btime_ns = struct.unpack_from("=qI", buf.raw, 80)
    return {"mask": mask, "attributes": attributes, "attributes_mask": amask, "blocks": blocks,
            "btime": btime_s * 10**9 + btime_ns}


def test_statx():
    import time

    before = time.time_ns()
    p = path("born")
    open(p, "w").close()
    st = statx(p)
    check(st["mask"] & STATX_BTIME, "statx gives btime")
    check(abs(st["btime"] - before) < 60 * 10**9, f"btime is the creation time: {st['btime']} vs {before}")
    os.utime(p, (1, 1))
    check(statx(p)["btime"] == st["btime"], "btime does not follow utimes")
    for bit in (STATX_ATTR_IMMUTABLE, STATX_ATTR_APPEND, STATX_ATTR_NODUMP, STATX_ATTR_COMPRESSED):
        check(st["attributes_mask"] & bit, f"attributes_mask has {bit:#x}")
    subprocess.run(["chattr", "+c", p], check=True)
    check(statx(p)["attributes"] & STATX_ATTR_COMPRESSED, "chattr +c shows as STATX_ATTR_COMPRESSED")


# ---- st_blocks of a fresh sparse write, before writeback ----
def test_sparse_blocks():
    p = path("sparse")
    out = subprocess.run(["xfs_io", "-f", "-c", "pwrite 1638400 51200", p], capture_output=True, text=True)
    check(out.returncode == 0, "xfs_io pwrite")
    blocks = os.stat(p).st_blocks
    print(f"sparse: {blocks} blocks before writeback")
    check(100 <= blocks <= 120, f"st_blocks counts the written blocks only, not the hole: {blocks}")
    os.sync()
    blocks = os.stat(p).st_blocks
    # Compressed, the 51200 bytes of one pattern take a block or two.
    low = 1 if compressed else 100
    check(low <= blocks <= 120, f"st_blocks after writeback: {blocks}")
    # Overwriting allocated data adds nothing, before writeback or after;
    # an append adds its blocks (generic/422). Compressed data shrinks at
    # writeback, so only the plain file system can compare.
    q = path("overwrite")
    with open(q, "wb") as f:
        f.write(pattern(64 << 10, 1))
    os.sync()
    fd = os.open(q, os.O_WRONLY)
    os.pwrite(fd, pattern(64 << 10, 2), 0)
    os.pwrite(fd, pattern(64 << 10, 3), 64 << 10)
    os.close(fd)
    dirty = os.stat(q).st_blocks
    os.sync()
    written = os.stat(q).st_blocks
    if not compressed:
        check(dirty == written == 256, f"st_blocks of an overwrite and an append, dirty and written: {dirty} {written}")


# ---- FS_IOC_GETFSUUID / FS_IOC_GETFSSYSFSPATH ----
FS_IOC_GETFSUUID = 0x80111500
FS_IOC_GETFSSYSFSPATH = 0x80811501


def test_fs_ids():
    fd = os.open(mnt, os.O_RDONLY)
    try:
        buf = bytearray(17)
        fcntl.ioctl(fd, FS_IOC_GETFSUUID, buf)
        got = buf[1:1 + buf[0]].hex()
        check(got == want_uuid.replace("-", ""), f"GETFSUUID gives the superblock's UUID: {got}")
        buf = bytearray(129)
        fcntl.ioctl(fd, FS_IOC_GETFSSYSFSPATH, buf)
        name = buf[1:1 + buf[0]].decode()
        check(name == "arborfs/" + os.path.basename(device), f"GETFSSYSFSPATH: {name}")
    finally:
        os.close(fd)


# ---- file handles ----
AT_FDCWD = -100
FILEID_INO64_GEN = 0x81


def name_to_handle(p):
    """(handle_type, handle bytes) of path p."""
    buf = ctypes.create_string_buffer(struct.pack("=Ii", 128, 0), 8 + 128)
    mount_id = ctypes.c_int()
    if libc.name_to_handle_at(AT_FDCWD, p.encode(), buf, ctypes.byref(mount_id), 0):
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), p)
    n, htype = struct.unpack_from("=Ii", buf.raw, 0)
    return htype, buf.raw[8:8 + n]


def open_by_handle(htype, data, flags=os.O_RDONLY):
    """An fd for the handle, or -errno."""
    buf = ctypes.create_string_buffer(struct.pack("=Ii", len(data), htype) + data)
    mfd = os.open(mnt, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = libc.open_by_handle_at(mfd, buf, flags)
        return fd if fd >= 0 else -ctypes.get_errno()
    finally:
        os.close(mfd)


def drop_caches():
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3")


def test_file_handles():
    d = path("fh/a/b")
    os.makedirs(d)
    f = os.path.join(d, "file")
    want = pattern(10000, 5)
    with open(f, "wb") as out:
        out.write(want)
    ftype, fh = name_to_handle(f)
    dtype, dh = name_to_handle(d)
    check(ftype == FILEID_INO64_GEN and len(fh) == 12, f"a file handle is ino64+generation: {ftype:#x} {len(fh)}")
    drop_caches()
    fd = open_by_handle(ftype, fh)
    check(fd >= 0, f"open_by_handle_at of a file: {fd}")
    if fd >= 0:
        check(os.pread(fd, len(want) + 1, 0) == want, "the file read by handle has its data")
        os.close(fd)
    # A directory handle opened with nothing cached: the dentry is joined to
    # the tree again through the parents' "..", so its path is the real one.
    drop_caches()
    fd = open_by_handle(dtype, dh, os.O_RDONLY | os.O_DIRECTORY)
    check(fd >= 0, f"open_by_handle_at of a directory: {fd}")
    if fd >= 0:
        where = os.readlink(f"/proc/self/fd/{fd}")
        check(where == d, f"a directory opened by handle is reconnected: {where}")
        os.close(fd)
    # Forged and stale handles.
    bad_gen = fh[:8] + bytes(b ^ 0xFF for b in fh[8:12])
    check(open_by_handle(ftype, bad_gen) == -errno.ESTALE, "a handle with another generation is stale")
    check(open_by_handle(ftype, struct.pack(">II", 0, 7) + fh[8:12]) == -errno.ESTALE,
          "a handle naming an internal inode number is stale")
    check(open_by_handle(ftype, struct.pack(">II", 0x7FFF, 1) + fh[8:12]) == -errno.ESTALE,
          "a handle naming no inode is stale")
    check(open_by_handle(1, fh) == -errno.ESTALE, "a handle of another type is stale")
    check(open_by_handle(ftype, fh[:8]) < 0, "a short handle is refused")
    keep = os.open(f, os.O_RDONLY)
    os.unlink(f)
    fd = open_by_handle(ftype, fh)
    check(fd >= 0, f"a handle of an unlinked file still open opens it, as on ext4 and xfs: {fd}")
    if fd >= 0:
        check(os.pread(fd, 16, 0) == want[:16], "the unlinked file read by handle has its data")
        os.close(fd)
    os.close(keep)
    drop_caches()
    check(open_by_handle(ftype, fh) == -errno.ESTALE, "a handle of a deleted file is stale")
    fd = open_by_handle(dtype, dh, os.O_RDONLY | os.O_DIRECTORY)
    check(fd >= 0, "the directory handle still opens")
    if fd >= 0:
        os.close(fd)


# ---- idmapped mounts ----
SYS_open_tree, SYS_move_mount, SYS_mount_setattr = 428, 429, 442
OPEN_TREE_CLONE = 1
AT_EMPTY_PATH, AT_RECURSIVE = 0x1000, 0x8000
MOVE_MOUNT_F_EMPTY_PATH = 4
MOUNT_ATTR_IDMAP = 0x00100000
SHIFT = 10000  # on-disk ids 0..999 show as SHIFT.. through the idmapped mount


def syscall_ok(r, what):
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, f"{what}: {os.strerror(e)}")
    return r


def idmapped_mount(src, dst):
    """Mount src again at dst, showing on-disk id n as n + SHIFT (n < 1000)."""
    holder = subprocess.Popen(["unshare", "--user", "sleep", "60"])
    try:
        for _ in range(100):  # until unshare has entered the new namespace
            if os.readlink(f"/proc/{holder.pid}/ns/user") != os.readlink("/proc/self/ns/user"):
                break
            time.sleep(0.05)
        for m in ("uid_map", "gid_map"):
            with open(f"/proc/{holder.pid}/{m}", "w") as f:
                f.write(f"0 {SHIFT} 1000\n")
        userns = os.open(f"/proc/{holder.pid}/ns/user", os.O_RDONLY)
    finally:
        holder.kill()
        holder.wait()
    try:
        tree = syscall_ok(libc.syscall(SYS_open_tree, AT_FDCWD, src.encode(), OPEN_TREE_CLONE), "open_tree")
        attr = struct.pack("=QQQQ", MOUNT_ATTR_IDMAP, 0, 0, userns)
        syscall_ok(libc.syscall(SYS_mount_setattr, tree, b"", AT_EMPTY_PATH | AT_RECURSIVE, attr, len(attr)),
                   "mount_setattr")
        syscall_ok(libc.syscall(SYS_move_mount, tree, b"", AT_FDCWD, dst.encode(), MOVE_MOUNT_F_EMPTY_PATH),
                   "move_mount")
        os.close(tree)
    finally:
        os.close(userns)


def as_ids(uid, gid, fn, *args):
    """fn(*args) with fsuid uid and fsgid gid (set back afterwards)."""
    os.setegid(gid)
    os.seteuid(uid)
    try:
        return fn(*args)
    finally:
        os.seteuid(0)
        os.setegid(0)


def test_idmapped_mount():
    shared = path("idmap")
    os.makedirs(shared)
    os.chmod(shared, 0o2777)  # setgid: new entries take the directory's group (0)
    plain = path("idmap-plain")
    os.makedirs(plain)
    os.chmod(plain, 0o777)
    owned = os.path.join(shared, "owned")
    open(owned, "wb").close()
    os.chown(owned, 7, 8)
    view = "/run/arborfs-idmapped"
    os.makedirs(view, exist_ok=True)
    idmapped_mount(mnt, view)
    try:
        st = os.stat(os.path.join(view, "idmap", "owned"))
        check((st.st_uid, st.st_gid) == (SHIFT + 7, SHIFT + 8),
              f"an idmapped mount shows the mapped owner: {st.st_uid}:{st.st_gid}")
        as_ids(SHIFT + 1, SHIFT + 2, lambda: open(os.path.join(view, "idmap", "made"), "wb").close())
        as_ids(SHIFT + 1, SHIFT + 2, os.mkdir, os.path.join(view, "idmap", "sub"))
        as_ids(SHIFT + 1, SHIFT + 2, lambda: open(os.path.join(view, "idmap-plain", "made"), "wb").close())
        os.chown(os.path.join(view, "idmap", "owned"), SHIFT + 3, SHIFT + 4)
        got = errno_of_call(lambda: open(os.path.join(view, "idmap", "root-made"), "wb").close())
        check(got == errno.EOVERFLOW, f"creating with an fsuid the idmap does not map is EOVERFLOW: {got}")
        got = errno_of_call(os.chown, os.path.join(view, "idmap", "owned"), 5, 5)
        check(got == errno.EOVERFLOW, f"chown to an id the idmap does not map is EOVERFLOW: {got}")
    finally:
        subprocess.run(["umount", view], check=False)
    drop_caches()

    def ids(p):
        st = os.stat(p)
        return st.st_uid, st.st_gid
    check(ids(os.path.join(shared, "made")) == (1, 0),
          f"a file made through the idmapped mount is stored unshifted, group from the setgid directory: "
          f"{ids(os.path.join(shared, 'made'))}")
    check(os.stat(os.path.join(shared, "sub")).st_mode & 0o2000 != 0, "a directory made there inherits the setgid bit")
    check(ids(os.path.join(plain, "made")) == (1, 2),
          f"fsuid and fsgid are mapped outside setgid directories: {ids(os.path.join(plain, 'made'))}")
    check(ids(owned) == (3, 4), f"chown through the idmapped mount stores mapped ids: {ids(owned)}")


def errno_of_call(fn, *args):
    """0, or the errno fn(*args) fails with."""
    try:
        fn(*args)
        return 0
    except OSError as e:
        return e.errno


compressed = len(sys.argv) > 4 and sys.argv[4] == "compressed"
for t in (test_fiemap, test_collapse_insert, test_fsxattr, test_statx, test_sparse_blocks, test_fs_ids,
          test_file_handles, test_idmapped_mount):
    try:
        if t is test_fiemap:
            t(compressed)
        else:
            t()
    except Exception as e:  # a test that cannot run is a failure too
        failures.append(f"{t.__name__}: {e!r}")
        print(f"FAIL: {t.__name__}: {e!r}")
print(f"features: {len(failures)} failures")
sys.exit(1 if failures else 0)
