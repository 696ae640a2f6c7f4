#!/usr/bin/env python3
"""Many processes at once on one arborfs mount: private files, one shared
file written in disjoint regions, one shared O_APPEND log, a shared
directory churned with create/rename/unlink, and a tree of stable files
whose names, attributes, extended attributes, links and bytes are read and
checked all along (the engine's shared reads, beside the writers; the
parent drops the caches now and then so that reads reach the engine cold).
Afterwards every byte and every log line must be there (no lost update),
and nothing may hang.

usage: concurrency.py MNT [WORKERS] [ROUNDS]
       concurrency.py MNT prepare   (only make the stable tree; remount
                                     before the run to start from a cold cache)
"""
import hashlib
import os
import random
import select
import sys

MNT = sys.argv[1]
PREPARE = sys.argv[2:3] == ["prepare"]
WORKERS = int(sys.argv[2]) if len(sys.argv) > 2 and not PREPARE else 8
ROUNDS = int(sys.argv[3]) if len(sys.argv) > 3 else 300
REGION = 64 * 1024
shared = os.path.join(MNT, "shared.bin")
log = os.path.join(MNT, "append.log")
churn = os.path.join(MNT, "churn")
stable = os.path.join(MNT, "stable")
STABLE = 200
OPS = 9


def stable_data(i):
    return hashlib.sha256(f"stable {i}".encode()).digest() * (1 + i * 37 % 300)


def check_stable(rng):
    """Read one stable file every way; a wrong answer raises."""
    i = rng.randrange(STABLE)
    name = os.path.join(stable, f"s{i}")
    st = os.stat(name)
    want = stable_data(i)
    if st.st_size != len(want) or st.st_mode & 0o777 != 0o640:
        raise AssertionError(f"{name}: stat {st.st_size} {oct(st.st_mode)}")
    if os.getxattr(name, "user.i") != str(i).encode() or "user.i" not in os.listxattr(name):
        raise AssertionError(f"{name}: xattr")
    if os.readlink(os.path.join(stable, f"l{i}")) != f"s{i}":
        raise AssertionError(f"l{i}: link target")
    with open(name, "rb") as f:
        if f.read() != want:
            raise AssertionError(f"{name}: bytes differ")


def list_stable(rng):
    rng.randrange(STABLE)
    names = os.listdir(stable)
    if len(names) != 2 * STABLE:
        raise AssertionError(f"stable directory lists {len(names)} names")


def block(worker, rnd):
    return hashlib.sha256(f"{worker}:{rnd}".encode()).digest() * 128  # 4 KiB


def worker(w):
    rng = random.Random(w)
    mine = os.path.join(MNT, f"private-{w}")
    os.mkdir(mine)
    expect = {}
    sfd = os.open(shared, os.O_RDWR)
    lfd = os.open(log, os.O_WRONLY | os.O_APPEND)
    for r in range(ROUNDS):
        op = rng.randrange(OPS)
        if op in (6, 7):
            check_stable(rng)
        elif op == 8:
            list_stable(rng)
        elif op == 0:  # private file rewrite
            name = os.path.join(mine, f"f{rng.randrange(20)}")
            data = block(w, r)[: rng.randrange(1, 4096)] * rng.randrange(1, 8)
            with open(name, "wb") as f:
                f.write(data)
            expect[name] = data
        elif op == 1:  # our region of the shared file
            off = w * REGION + rng.randrange(0, REGION - 4096, 512)
            os.pwrite(sfd, block(w, r)[:4096], off)
        elif op == 2:
            os.write(lfd, f"w{w} r{r}\n".encode())
        elif op == 3:  # churn a shared directory
            a = os.path.join(churn, f"c{w}-{rng.randrange(10)}")
            b = os.path.join(churn, f"c{(w + 1) % WORKERS}-{rng.randrange(10)}")
            try:
                if rng.randrange(2):
                    with open(a, "w") as f:
                        f.write("x")
                os.rename(a, b)
            except FileNotFoundError:
                pass
        elif op == 4:
            try:
                os.unlink(os.path.join(churn, f"c{w}-{rng.randrange(10)}"))
            except FileNotFoundError:
                pass
            os.listdir(churn)
        else:
            if rng.randrange(10) == 0:
                os.fsync(sfd)
    os.close(sfd)
    os.close(lfd)
    # Shared-file regions are checked by the parent; private files here.
    for name, data in expect.items():
        with open(name, "rb") as f:
            if f.read() != data:
                print(f"worker {w}: {name} lost an update")
                return 1
    return 0


def make_stable():
    os.mkdir(stable)
    for i in range(STABLE):
        name = os.path.join(stable, f"s{i}")
        with open(name, "wb") as f:
            f.write(stable_data(i))
        os.chmod(name, 0o640)
        os.setxattr(name, "user.i", str(i).encode())
        os.symlink(f"s{i}", os.path.join(stable, f"l{i}"))
    os.sync()


def drop_caches():
    """Drop the page cache, dentries and inodes (and the engine's clean
    nodes, through its shrinker) now and then while the workers run, until
    the parent closes the pipe: returns (pid, write end)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid:
        os.close(r)
        return pid, w
    try:
        os.close(w)
        rng = random.Random(99)
        while not select.select([r], [], [], rng.uniform(0.2, 1.0))[0]:
            with open("/proc/sys/vm/drop_caches", "w") as f:
                f.write("3")
    finally:
        os._exit(0)


def main():
    if PREPARE:
        make_stable()
        return 0
    if not os.path.exists(stable):
        make_stable()
    os.mkdir(churn)
    with open(shared, "wb") as f:
        f.truncate(WORKERS * REGION)
    open(log, "wb").close()
    pids = []
    for w in range(WORKERS):
        pid = os.fork()
        if pid == 0:
            try:
                os._exit(worker(w))
            except BaseException as e:  # noqa: BLE001
                print(f"worker {w}: {e!r}")
                os._exit(2)
        pids.append(pid)
    dropper, stop = drop_caches()
    bad = 0
    for pid in pids:
        _, st = os.waitpid(pid, 0)
        bad += os.waitstatus_to_exitcode(st) != 0
    os.close(stop)
    os.waitpid(dropper, 0)
    # Replay every worker's choices to know what its region and log lines must hold.
    with open(shared, "rb") as f:
        data = f.read()
    with open(log) as f:
        lines = set(f.read().splitlines())
    for w in range(WORKERS):
        rng = random.Random(w)
        region = bytearray(REGION)
        want_lines = set()
        for r in range(ROUNDS):
            op = rng.randrange(OPS)
            if op in (6, 7, 8):
                rng.randrange(STABLE)
            elif op == 0:
                rng.randrange(20)
                rng.randrange(1, 4096)
                rng.randrange(1, 8)
            elif op == 1:
                off = rng.randrange(0, REGION - 4096, 512)
                region[off:off + 4096] = block(w, r)[:4096]
            elif op == 2:
                want_lines.add(f"w{w} r{r}")
            elif op == 3:
                rng.randrange(10)
                rng.randrange(10)
                rng.randrange(2)
            elif op == 4:
                rng.randrange(10)
            else:
                rng.randrange(10)
        if data[w * REGION:(w + 1) * REGION] != bytes(region):
            print(f"worker {w}: shared file region differs")
            bad += 1
        if not want_lines <= lines:
            print(f"worker {w}: {len(want_lines - lines)} appended lines lost")
            bad += 1
    print(f"{WORKERS} workers x {ROUNDS} rounds: {'ok' if not bad else f'{bad} problems'}")
    return 1 if bad else 0


sys.exit(main())
