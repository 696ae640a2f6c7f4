#!/usr/bin/env python3
"""POSIX operations on a read-write arborfs mount, with expected results and
error codes. Runs in the QEMU guest as root.

usage: posix_ops.py MNT write    make and check everything
       posix_ops.py MNT verify   after a remount: what `write` left is still there

Prints one line per failed check and exits 1 if any failed.
"""
import ctypes
import errno
import fcntl
import json
import mmap
import os
import stat
import struct
import sys
import time

MNT = sys.argv[1]
PHASE = sys.argv[2]
libc = ctypes.CDLL(None, use_errno=True)
failures = []


def p(*parts):
    return os.path.join(MNT, *parts)


def check(cond, what):
    if not cond:
        failures.append(what)


def expect_errno(code, fn, *args, what=None):
    try:
        fn(*args)
    except OSError as e:
        if e.errno != code:
            failures.append(f"{what or fn.__name__}{args}: errno {errno.errorcode.get(e.errno)}, "
                            f"want {errno.errorcode[code]}")
        return
    failures.append(f"{what or fn.__name__}{args}: succeeded, want {errno.errorcode[code]}")


AT_FDCWD, AT_SYMLINK_FOLLOW = -100, 0x400


def libc_ok(r, *path):
    """Raise OSError with errno when a libc call returned non-zero."""
    if r != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e), *path)


def renameat2(old, new, flags):
    libc_ok(libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), ctypes.c_uint(flags)), old)


def link_fd(fd, new):
    """linkat(2) of an open file through /proc with AT_SYMLINK_FOLLOW (os.link calls link(2) here)."""
    libc_ok(libc.linkat(AT_FDCWD, f"/proc/self/fd/{fd}".encode(), AT_FDCWD, new.encode(), AT_SYMLINK_FOLLOW), new)


def fallocate(fd, mode, off, length):
    libc_ok(libc.fallocate(fd, ctypes.c_int(mode), ctypes.c_long(off), ctypes.c_long(length)))


RENAME_NOREPLACE, RENAME_EXCHANGE, RENAME_WHITEOUT = 1, 2, 4
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE = 1, 2, 0x10
FS_IOC_GETFLAGS, FS_IOC_SETFLAGS = 0x80086601, 0x40086602
FS_APPEND_FL, FS_IMMUTABLE_FL, FS_NODUMP_FL = 0x20, 0x10, 0x40


def write_file(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def pattern(n, seed):
    return bytes((i * 31 + seed + (i >> 12)) % 251 for i in range(n))


def as_user(uid, gid, fn):
    """Run fn as an unprivileged user in a child; returns its exit status (0 = fn returned True)."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            os._exit(0 if fn() else 1)
        except BaseException as e:  # noqa: BLE001 (report anything)
            print(f"as_user: {e!r}", file=sys.stderr)
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def errno_of(fn, *args):
    try:
        fn(*args)
    except OSError as e:
        return e.errno
    return 0


# ---- namespace ----

def t_namespace():
    os.mkdir(p("d"), 0o755)
    write_file(p("d", "f"), b"hello")
    check(read_file(p("d", "f")) == b"hello", "read back")
    expect_errno(errno.EEXIST, os.mkdir, p("d"))
    expect_errno(errno.EEXIST, os.open, p("d", "f"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    expect_errno(errno.ENOENT, os.stat, p("d", "nope"))
    expect_errno(errno.ENOTDIR, os.mkdir, p("d", "f", "x"))
    expect_errno(errno.ENAMETOOLONG, os.mkdir, p("d", "x" * 256))
    os.mkdir(p("d", "y" * 255))
    expect_errno(errno.ENOTEMPTY, os.rmdir, p("d"))
    expect_errno(errno.EISDIR, os.unlink, p("d", "y" * 255))
    expect_errno(errno.ENOTDIR, os.rmdir, p("d", "f"))
    os.rmdir(p("d", "y" * 255))
    # link counts: a directory has 2 + subdirectories
    os.mkdir(p("d", "sub1"))
    os.mkdir(p("d", "sub2"))
    check(os.stat(p("d")).st_nlink == 4, f"dir nlink {os.stat(p('d')).st_nlink} want 4")
    os.rmdir(p("d", "sub2"))
    check(os.stat(p("d")).st_nlink == 3, "dir nlink after rmdir")
    # special files
    os.mkfifo(p("d", "fifo"), 0o600)
    check(stat.S_ISFIFO(os.stat(p("d", "fifo")).st_mode), "fifo type")
    os.mknod(p("d", "chr"), 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    st = os.stat(p("d", "chr"))
    check(stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3), "char device")
    os.mknod(p("d", "blk"), 0o600 | stat.S_IFBLK, os.makedev(259, 70000))
    st = os.stat(p("d", "blk"))
    check(stat.S_ISBLK(st.st_mode) and os.major(st.st_rdev) == 259 and os.minor(st.st_rdev) == 70000,
          "block device with a large minor")
    os.mknod(p("d", "sock"), 0o600 | stat.S_IFSOCK)
    check(stat.S_ISSOCK(os.stat(p("d", "sock")).st_mode), "socket type")
    with open(p("d", "chr"), "rb") as f:  # /dev/null semantics through the node
        check(f.read(10) == b"", "char device node opens the device")
    # symlinks
    os.symlink("f", p("d", "ln"))
    check(os.readlink(p("d", "ln")) == "f" and read_file(p("d", "ln")) == b"hello", "symlink")
    long_target = "t/" * 1000
    os.symlink(long_target, p("d", "longln"))
    check(os.readlink(p("d", "longln")) == long_target, "long symlink target")
    expect_errno(errno.EEXIST, os.symlink, "x", p("d", "ln"))
    check(stat.S_ISLNK(os.lstat(p("d", "ln")).st_mode), "lstat symlink")
    # hard links
    os.link(p("d", "f"), p("d", "hard"))
    check(os.stat(p("d", "f")).st_nlink == 2, "nlink after link")
    check(os.stat(p("d", "f")).st_ino == os.stat(p("d", "hard")).st_ino, "hard link same inode")
    expect_errno(errno.EPERM, os.link, p("d"), p("dirlink"))
    expect_errno(errno.EEXIST, os.link, p("d", "f"), p("d", "hard"))
    os.unlink(p("d", "hard"))
    check(os.stat(p("d", "f")).st_nlink == 1, "nlink after unlink")
    names = sorted(os.listdir(p("d")))
    check(names == sorted(["f", "sub1", "fifo", "chr", "blk", "sock", "ln", "longln"]), f"readdir {names}")


def t_many_entries():
    os.mkdir(p("many"))
    for i in range(3000):
        write_file(p("many", f"entry-{i:05d}-" + "n" * (i % 50)), b"")
    names = os.listdir(p("many"))
    check(len(names) == 3000 and len(set(names)) == 3000, f"3000 entries, readdir gave {len(names)}")
    for i in range(0, 3000, 2):
        os.unlink(p("many", f"entry-{i:05d}-" + "n" * (i % 50)))
    check(len(os.listdir(p("many"))) == 1500, "1500 entries after unlinking half")


def t_rename():
    os.mkdir(p("r"))
    os.mkdir(p("r", "a"))
    os.mkdir(p("r", "b"))
    write_file(p("r", "a", "x"), b"x")
    write_file(p("r", "b", "y"), b"y")
    os.rename(p("r", "a", "x"), p("r", "b", "x2"))  # across directories
    check(read_file(p("r", "b", "x2")) == b"x" and not os.path.exists(p("r", "a", "x")), "rename across dirs")
    os.rename(p("r", "b", "x2"), p("r", "b", "y"))  # over an existing file
    check(read_file(p("r", "b", "y")) == b"x", "rename over a file")
    expect_errno(errno.EEXIST, renameat2, p("r", "b", "y"), p("r", "b", "y"), RENAME_NOREPLACE, what="noreplace self")
    write_file(p("r", "a", "z"), b"z")
    expect_errno(errno.EEXIST, renameat2, p("r", "a", "z"), p("r", "b", "y"), RENAME_NOREPLACE, what="noreplace")
    renameat2(p("r", "a", "z"), p("r", "b", "y"), RENAME_EXCHANGE)
    check(read_file(p("r", "a", "z")) == b"x" and read_file(p("r", "b", "y")) == b"z", "exchange files")
    expect_errno(errno.ENOENT, renameat2, p("r", "a", "z"), p("r", "b", "none"), RENAME_EXCHANGE, what="exchange missing")
    # directories: move, exchange a file with a directory, replace an empty directory
    os.mkdir(p("r", "a", "sub"))
    write_file(p("r", "a", "sub", "inner"), b"in")
    os.rename(p("r", "a", "sub"), p("r", "b", "sub"))
    check(read_file(p("r", "b", "sub", "inner")) == b"in", "moved directory keeps its content")
    check(os.stat(p("r", "a")).st_nlink == 2 and os.stat(p("r", "b")).st_nlink == 3, "parent nlinks after dir move")
    check(os.path.samefile(p("r", "b", "sub", ".."), p("r", "b")), ".. follows the move")
    renameat2(p("r", "a", "z"), p("r", "b", "sub"), RENAME_EXCHANGE)
    check(os.path.isdir(p("r", "a", "z")) and read_file(p("r", "b", "sub")) == b"x", "exchange file and dir")
    check(os.stat(p("r", "a")).st_nlink == 3 and os.stat(p("r", "b")).st_nlink == 2, "nlinks after exchange")
    os.mkdir(p("r", "b", "empty"))
    os.rename(p("r", "a", "z"), p("r", "b", "empty"))
    check(read_file(p("r", "b", "empty", "inner")) == b"in", "rename over an empty directory")
    os.mkdir(p("r", "a", "full"))
    write_file(p("r", "a", "full", "f"), b"")
    expect_errno(errno.ENOTEMPTY, os.rename, p("r", "b", "empty"), p("r", "a", "full"))
    expect_errno(errno.EINVAL, os.rename, p("r", "b"), p("r", "b", "empty", "inside"))
    expect_errno(errno.EISDIR, os.rename, p("r", "b", "y"), p("r", "a", "full"))
    expect_errno(errno.ENOTDIR, os.rename, p("r", "a", "full"), p("r", "b", "y"))
    # whiteouts (overlayfs): a 0:0 character device stays at the old name
    renameat2(p("r", "b", "y"), p("r", "a", "moved"), RENAME_WHITEOUT)
    st = os.lstat(p("r", "b", "y"))
    check(stat.S_ISCHR(st.st_mode) and st.st_rdev == 0 and st.st_nlink == 1, "whiteout left behind")
    check(read_file(p("r", "a", "moved")) == b"z", "whiteout rename moved the file")
    expect_errno(errno.EINVAL, renameat2, p("r", "a", "moved"), p("r", "b", "y"), RENAME_WHITEOUT | RENAME_EXCHANGE,
                 what="whiteout with exchange")


def t_open_unlinked():
    fd = os.open(p("unlinked"), os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"still here" * 1000)
    os.unlink(p("unlinked"))
    check(not os.path.exists(p("unlinked")), "unlinked name is gone")
    os.lseek(fd, 0, os.SEEK_SET)
    check(os.read(fd, 10) == b"still here", "open unlinked file keeps its data")
    check(os.fstat(fd).st_nlink == 0, "nlink 0 while open")
    os.close(fd)


def t_tmpfile():
    # O_TMPFILE: no name; linkat() gives it one, else the last close deletes it
    before = os.statvfs(p()).f_bfree
    fd = os.open(p("r"), os.O_TMPFILE | os.O_RDWR, 0o640)
    os.write(fd, os.urandom(16 << 20))  # incompressible
    os.fsync(fd)
    check(os.fstat(fd).st_nlink == 0 and stat.S_ISREG(os.fstat(fd).st_mode), "tmpfile has no links")
    check(os.statvfs(p()).f_bfree < before - 2048, "tmpfile data takes space")
    os.close(fd)
    os.sync()
    check(os.statvfs(p()).f_bfree >= before - 1024, "closed tmpfile's space comes back")
    fd = os.open(p("r"), os.O_TMPFILE | os.O_WRONLY, 0o600)
    os.write(fd, b"named later")
    link_fd(fd, p("tmp-named"))
    check(os.fstat(fd).st_nlink == 1, "linked tmpfile has one link")
    os.close(fd)
    check(read_file(p("tmp-named")) == b"named later", "linked tmpfile content")
    fd = os.open(p("r"), os.O_TMPFILE | os.O_WRONLY | os.O_EXCL, 0o600)
    expect_errno(errno.ENOENT, link_fd, fd, p("tmp-excl"), what="linking an O_EXCL tmpfile")
    os.close(fd)


# ---- attributes ----

def t_attributes():
    write_file(p("attr"), b"a" * 100)
    os.chmod(p("attr"), 0o4751)
    check(stat.S_IMODE(os.stat(p("attr")).st_mode) == 0o4751, "chmod")
    os.chown(p("attr"), 1234, 5678)
    st = os.stat(p("attr"))
    check((st.st_uid, st.st_gid) == (1234, 5678), "chown")
    check(not st.st_mode & stat.S_ISUID, "chown clears setuid")
    os.utime(p("attr"), ns=(1_000_000_123, 2_000_000_456))
    st = os.stat(p("attr"))
    check((st.st_atime_ns, st.st_mtime_ns) == (1_000_000_123, 2_000_000_456), "utimes with nanoseconds")
    os.utime(p("attr"), ns=(-1_500_000_000_000_000_001, 4_000_000_000_000_000_000))
    st = os.stat(p("attr"))
    check((st.st_atime_ns, st.st_mtime_ns) == (-1_500_000_000_000_000_001, 4_000_000_000_000_000_000),
          f"times before 1970 and after 2038: {st.st_atime_ns} {st.st_mtime_ns}")
    # The super block's bounds, whole seconds of a signed 64-bit nanosecond count.
    write_file(p("edges"), b"")
    os.utime(p("edges"), ns=(-9_223_372_036 * 10**9, 9_223_372_036 * 10**9))
    before = os.stat(p("attr")).st_ctime_ns
    os.chmod(p("attr"), 0o640)
    check(os.stat(p("attr")).st_ctime_ns >= before, "chmod moves ctime")
    # truncate down and up
    write_file(p("trunc"), pattern(10000, 1))
    os.truncate(p("trunc"), 5000)
    check(read_file(p("trunc")) == pattern(10000, 1)[:5000], "truncate down")
    os.truncate(p("trunc"), 20000)
    check(read_file(p("trunc")) == pattern(10000, 1)[:5000] + bytes(15000), "truncate up reads zeros")
    # truncate(2) by path passes no time attributes: the file system stamps
    # mtime and ctime when the size changes (generic/313), not when it stays.
    os.utime(p("trunc"), ns=(1_000_000_000, 1_000_000_000))
    old = os.stat(p("trunc"))
    os.truncate(p("trunc"), 7000)
    st = os.stat(p("trunc"))
    check(st.st_mtime_ns > old.st_mtime_ns and st.st_ctime_ns >= old.st_ctime_ns,
          f"truncate(2) by path moves mtime and ctime: {st.st_mtime_ns} {st.st_ctime_ns}")
    os.utime(p("trunc"), ns=(1_000_000_000, 1_000_000_000))
    os.truncate(p("trunc"), 7000)
    check(os.stat(p("trunc")).st_mtime_ns == 1_000_000_000, "truncate(2) to the same size leaves mtime")
    os.truncate(p("trunc"), 0)
    check(os.stat(p("trunc")).st_size == 0 and read_file(p("trunc")) == b"", "truncate to 0")
    expect_errno(errno.EISDIR, os.truncate, p("d"), 0)
    # setgid directories and inheritance
    os.mkdir(p("sgid"), 0o2775)
    os.chown(p("sgid"), 0, 4242)
    os.chmod(p("sgid"), 0o2775)
    write_file(p("sgid", "f"), b"")
    os.mkdir(p("sgid", "sub"))
    check(os.stat(p("sgid", "f")).st_gid == 4242, "file inherits the setgid directory's group")
    st = os.stat(p("sgid", "sub"))
    check(st.st_gid == 4242 and st.st_mode & stat.S_ISGID, "subdirectory inherits group and setgid")
    # umask applies (no default ACL)
    old = os.umask(0o077)
    write_file(p("umasked"), b"", 0o666)
    os.umask(old)
    check(stat.S_IMODE(os.stat(p("umasked")).st_mode) == 0o600, "umask")


def t_relatime():
    # relatime, the default: the first read after a write moves atime, the
    # next does not. The engine's clock must be the VFS's, or a new file's
    # atime lies ahead of its mtime and relatime never updates it.
    write_file(p("atime"), b"aaa")
    written = os.stat(p("atime"))
    check(written.st_atime_ns <= written.st_mtime_ns, f"new file: atime {written.st_atime_ns} "
                                                      f"after mtime {written.st_mtime_ns}")
    time.sleep(1.1)
    read_file(p("atime"))
    first = os.stat(p("atime"))
    check(first.st_atime_ns > written.st_atime_ns, "relatime: the first read moves atime")
    time.sleep(1.1)
    read_file(p("atime"))
    check(os.stat(p("atime")).st_atime_ns == first.st_atime_ns, "relatime: the second read keeps atime")


def t_permissions():
    os.mkdir(p("perm"), 0o755)
    write_file(p("perm", "ro"), b"secret", 0o600)
    check(as_user(1000, 1000, lambda: errno_of(open, p("perm", "ro")) == errno.EACCES) == 0,
          "user cannot read a 0600 root file")
    check(as_user(1000, 1000, lambda: errno_of(os.mkdir, p("perm", "x")) == errno.EACCES) == 0,
          "user cannot create in a 0755 root directory")
    os.mkdir(p("sticky"))
    os.chmod(p("sticky"), 0o1777)  # mkdir's mode goes through the umask
    check(as_user(1000, 1000, lambda: write_file(p("sticky", "mine"), b"1") is None) == 0, "user creates in /tmp-like dir")
    check(as_user(1001, 1001, lambda: errno_of(os.unlink, p("sticky", "mine")) == errno.EPERM) == 0,
          "sticky directory protects other users' files")
    check(as_user(1000, 1000, lambda: errno_of(os.unlink, p("sticky", "mine")) == 0) == 0, "owner unlinks in sticky dir")
    check(as_user(1000, 1000, lambda: errno_of(os.chown, p("perm", "ro"), 1000, 1000) == errno.EPERM) == 0,
          "user cannot chown root's file")


def t_xattrs():
    write_file(p("xa"), b"")
    os.setxattr(p("xa"), "user.one", b"1")
    os.setxattr(p("xa"), "trusted.two", b"2" * 200)
    os.setxattr(p("xa"), "security.three", b"")
    check(os.getxattr(p("xa"), "user.one") == b"1", "getxattr")
    check(sorted(os.listxattr(p("xa"))) == ["security.three", "trusted.two", "user.one"], f"listxattr {os.listxattr(p('xa'))}")
    expect_errno(errno.EEXIST, os.setxattr, p("xa"), "user.one", b"x", os.XATTR_CREATE)
    expect_errno(errno.ENODATA, os.setxattr, p("xa"), "user.nope", b"x", os.XATTR_REPLACE)
    os.setxattr(p("xa"), "user.one", b"replaced", os.XATTR_REPLACE)
    check(os.getxattr(p("xa"), "user.one") == b"replaced", "replace")
    os.removexattr(p("xa"), "trusted.two")
    expect_errno(errno.ENODATA, os.getxattr, p("xa"), "trusted.two")
    expect_errno(errno.ENODATA, os.removexattr, p("xa"), "trusted.two")
    expect_errno(errno.EOPNOTSUPP, os.setxattr, p("xa"), "bogus.ns", b"x")
    os.setxattr(p("d"), "user.ondir", b"dir")
    os.setxattr(p("d", "ln"), "trusted.onlink", b"link", follow_symlinks=False)
    check(os.getxattr(p("d", "ln"), "trusted.onlink", follow_symlinks=False) == b"link", "xattr on a symlink")
    for i in range(100):
        os.setxattr(p("xa"), f"user.k{i}", bytes([i]) * (i * 5))
    check(all(os.getxattr(p("xa"), f"user.k{i}") == bytes([i]) * (i * 5) for i in range(100)), "100 xattrs")


def t_acl():
    # ACL xattrs in the VFS binary form: version 2, entries (tag, perm, id)
    def acl(*entries):
        return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", t, pm, i) for t, pm, i in entries)
    USER_OBJ, USER, GROUP_OBJ, MASK, OTHER = 1, 2, 4, 0x10, 0x20
    os.mkdir(p("acl"), 0o755)
    write_file(p("acl", "f"), b"acl", 0o600)
    os.setxattr(p("acl", "f"), "system.posix_acl_access",
                acl((USER_OBJ, 6, 0xFFFFFFFF), (USER, 4, 1000), (GROUP_OBJ, 0, 0xFFFFFFFF),
                    (MASK, 4, 0xFFFFFFFF), (OTHER, 0, 0xFFFFFFFF)))
    check(as_user(1000, 1000, lambda: open(p("acl", "f"), "rb").read() == b"acl") == 0, "ACL grants user 1000 read")
    check(as_user(1001, 1001, lambda: errno_of(open, p("acl", "f")) == errno.EACCES) == 0, "ACL denies user 1001")
    check(stat.S_IMODE(os.stat(p("acl", "f")).st_mode) == 0o640, "mode group bits show the ACL mask")
    # default ACL: inherited by new files
    os.setxattr(p("acl"), "system.posix_acl_default",
                acl((USER_OBJ, 7, 0xFFFFFFFF), (USER, 6, 1000), (GROUP_OBJ, 5, 0xFFFFFFFF),
                    (MASK, 7, 0xFFFFFFFF), (OTHER, 0, 0xFFFFFFFF)))
    write_file(p("acl", "inherits"), b"", 0o666)
    check(os.getxattr(p("acl", "inherits"), "system.posix_acl_access")[:4] == struct.pack("<I", 2),
          "new file inherits the default ACL")
    check(as_user(1000, 1000, lambda: write_file(p("acl", "inherits"), b"w") is None) == 0,
          "inherited ACL lets user 1000 write")
    os.chmod(p("acl", "inherits"), 0o600)
    check(as_user(1000, 1000, lambda: errno_of(open, p("acl", "inherits"), "wb") == errno.EACCES) == 0,
          "chmod updates the ACL mask")


# ---- data ----

def t_data():
    data = pattern(3 * 1024 * 1024 + 777, 7)
    write_file(p("big"), data)
    check(read_file(p("big")) == data, "write and read back 3 MiB")
    with open(p("big"), "r+b") as f:  # overwrite in the middle, unaligned
        f.seek(1_000_001)
        f.write(b"X" * 9999)
    data = data[:1_000_001] + b"X" * 9999 + data[1_010_000:]
    check(read_file(p("big")) == data, "unaligned overwrite")
    with open(p("big"), "ab") as f:
        f.write(b"tail")
    check(read_file(p("big")) == data + b"tail", "append")
    os.sync()
    # O_DIRECT, aligned and not
    buf = mmap.mmap(-1, 1 << 20)
    buf.write(pattern(1 << 20, 9))
    fd = os.open(p("direct"), os.O_RDWR | os.O_CREAT | os.O_DIRECT, 0o644)
    check(os.write(fd, buf) == 1 << 20, "O_DIRECT write")
    rbuf = mmap.mmap(-1, 1 << 20)
    os.lseek(fd, 0, os.SEEK_SET)
    check(os.readv(fd, [rbuf]) == 1 << 20 and rbuf[:] == buf[:], "O_DIRECT read")
    os.close(fd)
    check(read_file(p("direct")) == pattern(1 << 20, 9), "buffered read of O_DIRECT data")
    # mmap write
    write_file(p("mapped"), bytes(8192 * 3))
    with open(p("mapped"), "r+b") as f:
        m = mmap.mmap(f.fileno(), 8192 * 3)
        m[100:105] = b"mmap!"
        m[8192 * 2 + 7:8192 * 2 + 12] = b"third"
        m.flush()
        m.close()
    d = read_file(p("mapped"))
    check(d[100:105] == b"mmap!" and d[8192 * 2 + 7:8192 * 2 + 12] == b"third", "mmap write")
    # fsync, fdatasync, syncfs
    fd = os.open(p("synced"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"synced data")
    os.fsync(fd)
    os.fdatasync(fd)
    libc.syncfs(fd)
    os.close(fd)
    fd = os.open(p("osync"), os.O_WRONLY | os.O_CREAT | os.O_SYNC, 0o644)
    os.write(fd, b"O_SYNC")
    os.close(fd)


def t_sparse_and_fallocate():
    fd = os.open(p("sparse"), os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"D" * 4096, 1 << 20)
    os.pwrite(fd, b"E" * 4096, 8 << 20)
    os.fsync(fd)
    check(os.fstat(fd).st_size == (8 << 20) + 4096, "sparse size")
    check(os.lseek(fd, 0, os.SEEK_DATA) == 1 << 20, "SEEK_DATA")
    check(os.lseek(fd, 1 << 20, os.SEEK_HOLE) == (1 << 20) + 4096, "SEEK_HOLE")
    check(os.lseek(fd, (1 << 20) + 4096, os.SEEK_DATA) == 8 << 20, "SEEK_DATA to the second extent")
    check(os.lseek(fd, 8 << 20, os.SEEK_HOLE) == (8 << 20) + 4096, "SEEK_HOLE at EOF")
    expect_errno(errno.ENXIO, os.lseek, fd, (8 << 20) + 4096, os.SEEK_DATA)
    check(os.fstat(fd).st_blocks * 512 < 1 << 20, f"sparse file allocates little ({os.fstat(fd).st_blocks} blocks)")
    check(os.pread(fd, 4096, 4096) == bytes(4096), "hole reads zeros")
    # fallocate: default extends and allocates
    fallocate(fd, 0, 16 << 20, 1 << 20)
    st = os.fstat(fd)
    check(st.st_size == 17 << 20, f"fallocate extends ({st.st_size})")
    check(os.pread(fd, 4096, 16 << 20) == bytes(4096), "preallocated range reads zeros")
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 20 << 20, 1 << 20)
    check(os.fstat(fd).st_size == 17 << 20, "KEEP_SIZE keeps the size")
    # punch a hole in data
    os.pwrite(fd, b"P" * (64 << 10), 2 << 20)
    fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (2 << 20) + 4096, 8192)
    got = os.pread(fd, 64 << 10, 2 << 20)
    check(got == b"P" * 4096 + bytes(8192) + b"P" * ((64 << 10) - 12288), "punch hole")
    expect_errno(errno.EOPNOTSUPP, fallocate, fd, FALLOC_FL_PUNCH_HOLE, 0, 4096)
    # zero range, unaligned
    fallocate(fd, FALLOC_FL_ZERO_RANGE, (2 << 20) + 30000, 5000)
    got = os.pread(fd, 64 << 10, 2 << 20)
    want = bytearray(b"P" * 4096 + bytes(8192) + b"P" * ((64 << 10) - 12288))
    want[30000:35000] = bytes(5000)
    check(got == bytes(want), "zero range")
    os.close(fd)
    # Truncating to the size a file has frees the preallocation past it
    # (generic/092), with the data written just before still in the cache.
    fd = os.open(p("prealloc"), os.O_RDWR | os.O_CREAT, 0o644)
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 8 << 20)
    os.pwrite(fd, b"Q" * (1 << 20), 0)
    os.ftruncate(fd, 1 << 20)
    os.fsync(fd)
    # (Bounds, not equality: on a compressed mount the data takes less.)
    blocks = os.fstat(fd).st_blocks
    check(blocks <= (1 << 20) // 512, f"truncate to the same size frees preallocation past it ({blocks} blocks)")
    check(os.pread(fd, 2 << 20, 0) == b"Q" * (1 << 20), "the data before it stays")
    fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 4 << 20)
    os.ftruncate(fd, 3 << 20)
    blocks = os.fstat(fd).st_blocks
    check((4 << 20) // 512 <= blocks <= (5 << 20) // 512,
          f"truncating up keeps preallocation past the new size ({blocks} blocks)")
    os.close(fd)
    # files larger than 4 GiB (sparse)
    fd = os.open(p("huge"), os.O_RDWR | os.O_CREAT, 0o644)
    os.pwrite(fd, b"beyond 4G", (5 << 30) + 12345)
    os.fsync(fd)
    check(os.fstat(fd).st_size == (5 << 30) + 12345 + 9, "size past 4 GiB")
    check(os.pread(fd, 9, (5 << 30) + 12345) == b"beyond 4G", "data past 4 GiB")
    os.close(fd)


def t_flags():
    write_file(p("flags"), b"flags")
    fd = os.open(p("flags"), os.O_RDONLY)
    buf = bytearray(struct.pack("l", 0))
    fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
    check(struct.unpack("l", buf)[0] == 0, "no flags")
    fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", FS_APPEND_FL | FS_NODUMP_FL))
    fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf)
    check(struct.unpack("l", buf)[0] == FS_APPEND_FL | FS_NODUMP_FL, "append+nodump set")
    os.close(fd)
    expect_errno(errno.EPERM, os.open, p("flags"), os.O_WRONLY | os.O_TRUNC, what="open append-only for truncate")
    with open(p("flags"), "ab") as f:
        f.write(b"+more")
    check(read_file(p("flags")) == b"flags+more", "append-only file takes appends")
    fd = os.open(p("flags"), os.O_RDONLY)
    fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", FS_IMMUTABLE_FL))
    os.close(fd)
    expect_errno(errno.EPERM, os.unlink, p("flags"))
    expect_errno(errno.EPERM, os.open, p("flags"), os.O_WRONLY, what="open immutable for writing")
    fd = os.open(p("flags"), os.O_RDONLY)
    fcntl.ioctl(fd, FS_IOC_SETFLAGS, struct.pack("l", 0))
    os.close(fd)
    os.unlink(p("flags"))


def t_statfs():
    st1 = os.statvfs(MNT)
    write_file(p("space"), os.urandom(8 << 20))
    os.sync()
    st2 = os.statvfs(MNT)
    used = (st1.f_bfree - st2.f_bfree) * st2.f_frsize
    check(7 << 20 <= used <= 10 << 20, f"statfs sees 8 MiB written (saw {used})")
    os.unlink(p("space"))
    os.sync()
    st3 = os.statvfs(MNT)
    lost = (st1.f_bfree - st3.f_bfree) * st3.f_frsize
    # Freed space in the bucket being filled comes back when it is closed.
    check(lost <= 4 << 20, f"statfs sees the space freed ({lost} bytes still in use)")


TIMED = ["big", "direct", "synced", "attr", "tmp-named", "trunc"]


def t_record_times():
    # The times the VFS shows now must be the ones that persist: writeback
    # after the fact must neither lose them nor stamp its own.
    times = {n: [os.stat(p(n)).st_mtime_ns, os.stat(p(n)).st_ctime_ns] for n in TIMED}
    with open(p("times.json"), "w") as f:
        json.dump(times, f)


# ---- after a remount ----

def v_persisted():
    check(read_file(p("d", "f")) == b"hello", "file content")
    check(os.readlink(p("d", "longln")) == "t/" * 1000, "long symlink")
    st = os.stat(p("d", "blk"))
    check(stat.S_ISBLK(st.st_mode) and os.minor(st.st_rdev) == 70000, "block device")
    check(os.stat(p("d")).st_nlink == 3, "directory nlink")
    st = os.stat(p("attr"))
    check((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640), "owner and mode")
    check((st.st_atime_ns, st.st_mtime_ns) == (-1_500_000_000_000_000_001, 4_000_000_000_000_000_000),
          f"nanosecond times: {st.st_atime_ns} {st.st_mtime_ns}")
    st = os.stat(p("edges"))
    check((st.st_atime, st.st_mtime) == (-9_223_372_036, 9_223_372_036),
          f"the first and last second persist exactly (generic/402): {st.st_atime} {st.st_mtime}")
    check(os.stat(p("sgid", "sub")).st_gid == 4242, "inherited group")
    check(os.getxattr(p("xa"), "user.one") == b"replaced" and len(os.listxattr(p("xa"))) == 102, "xattrs")
    check(os.getxattr(p("acl", "inherits"), "system.posix_acl_access")[:4] == struct.pack("<I", 2), "ACL")
    check(read_file(p("synced")) == b"synced data" and read_file(p("osync")) == b"O_SYNC", "synced files")
    big = read_file(p("big"))
    check(len(big) == 3 * 1024 * 1024 + 777 + 4 and big.endswith(b"tail") and big[1_000_001:1_010_000] == b"X" * 9999,
          "big file")
    check(read_file(p("direct")) == pattern(1 << 20, 9), "O_DIRECT file")
    fd = os.open(p("huge"), os.O_RDONLY)
    check(os.pread(fd, 9, (5 << 30) + 12345) == b"beyond 4G", "file past 4 GiB")
    os.close(fd)
    fd = os.open(p("sparse"), os.O_RDONLY)
    check(os.lseek(fd, 0, os.SEEK_DATA) == 1 << 20, "holes kept")
    os.close(fd)
    check(not os.path.exists(p("unlinked")), "unlinked file gone")
    check(len(os.listdir(p("many"))) == 1500, "directory entries")
    check(read_file(p("r", "b", "empty", "inner")) == b"in", "renamed tree")
    with open(p("times.json")) as f:
        times = json.load(f)
    for n in TIMED:
        st = os.stat(p(n))
        check([st.st_mtime_ns, st.st_ctime_ns] == times[n], f"{n}: times {st.st_mtime_ns} {st.st_ctime_ns}, "
                                                           f"want {times[n]}")
    check(read_file(p("tmp-named")) == b"named later", "linked tmpfile")
    check(stat.S_ISCHR(os.lstat(p("r", "b", "y")).st_mode), "whiteout")


if PHASE == "write":
    for t in [t_namespace, t_many_entries, t_rename, t_tmpfile, t_open_unlinked, t_attributes, t_relatime,
              t_permissions, t_xattrs, t_acl, t_data, t_sparse_and_fallocate, t_flags, t_statfs, t_record_times]:
        try:
            t()
        except Exception as e:  # noqa: BLE001 (one broken check must not hide the others)
            failures.append(f"{t.__name__}: {e!r}")
else:
    try:
        v_persisted()
    except Exception as e:  # noqa: BLE001
        failures.append(f"verify: {e!r}")

for f in failures:
    print("FAILED:", f)
sys.exit(1 if failures else 0)
