#!/usr/bin/env python3
"""Crash-test workload (guest): write files, fsync them and their directory,
append to a log with fsync, delete some files, and leave un-fsync'd noise
behind; after each durable step, append a record to RECORDS (on the host,
over 9p without caching, so a record exists only if the step completed).
Runs until the guest is killed.

With PROCS > 1, that many worker processes run at once, so the mount's
engine calls and fsyncs overlap (group commit under a power cut): each works
in a directory of its own and also creates and deletes files in one shared
directory, and writes fsync'd blocks of its own into one shared file. Worker
0 records to RECORDS, worker i to RECORDS.wI. Two more processes walk and
read the whole tree over and over (the engine's shared reads, under the
cut too); they record nothing, and an error other than a name gone fails
the round.

usage: workload.py MNT RECORDS PREFIX [PROCS]
records: FILE path sha256 size | UNLINK path | GONE path | LOG path length sha256-of-prefix
         | RANGE path offset length sha256
(UNLINK is written before the unlink, GONE after the directory's fsync: a
power cut between the two may leave the file either way.)
"""
import hashlib
import os
import random
import sys

SHARED_SLOT = 1 << 20  # bytes of the shared file each worker owns


def fsync_path(path, flags=os.O_RDONLY):
    fd = os.open(path, flags)
    os.fsync(fd)
    os.close(fd)


def work(mnt, records, prefix, worker, shared):
    rec = os.open(records, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def note(line):
        os.write(rec, (line + "\n").encode())

    top = os.path.join(mnt, prefix)
    os.mkdir(top)
    fsync_path(mnt)
    rng = random.Random(prefix)
    log_path = os.path.join(top, "log")
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    fsync_path(top)
    log_hash = hashlib.sha256()
    log_len = 0
    seq = 0
    while True:
        seq += 1
        # Every other file goes to the directory all workers share.
        where = shared if shared and seq % 2 == 0 else top
        name = os.path.join(where, f"{prefix}-f{seq}" if where == shared else f"f{seq}")
        data = rng.randbytes(rng.choice([0, 100, 4096, 10000, 65536, 300000, 1 << 20]))
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.fsync(fd)
        os.close(fd)
        fsync_path(where)
        note(f"FILE {name} {hashlib.sha256(data).hexdigest()} {len(data)}")

        chunk = rng.randbytes(rng.randrange(1, 20000))
        os.write(log, chunk)
        os.fsync(log)
        log_hash.update(chunk)
        log_len += len(chunk)
        note(f"LOG {log_path} {log_len} {log_hash.hexdigest()}")

        if shared:
            # A block of this worker's slot of the shared file, rewritten in place.
            path = os.path.join(shared, "blocks")
            block = rng.randbytes(4096)
            offset = worker * SHARED_SLOT + rng.randrange(SHARED_SLOT // 4096) * 4096
            sha = hashlib.sha256(block).hexdigest()
            # Before the write: a cut before its RANGE may leave either block there.
            note(f"WRITING {path} {offset} {len(block)} {sha}")
            fd = os.open(path, os.O_WRONLY)
            os.pwrite(fd, block, offset)
            os.fsync(fd)
            os.close(fd)
            note(f"RANGE {path} {offset} {len(block)} {sha}")

        if seq % 5 == 0:
            back = seq - 3
            victim = (os.path.join(shared, f"{prefix}-f{back}") if shared and back % 2 == 0
                      else os.path.join(top, f"f{back}"))
            note(f"UNLINK {victim}")
            os.unlink(victim)
            fsync_path(os.path.dirname(victim))
            note(f"GONE {victim}")
        if seq % 3 == 0:
            # Noise nobody waits for: a rewrite of an older file without fsync.
            with open(os.path.join(top, f"noise{seq % 4}"), "wb") as f:
                f.write(rng.randbytes(2 << 20))


def read_all(mnt):
    """Stat, list the attributes of and read every file, over and over."""
    while True:
        for root, _, files in os.walk(mnt):
            for n in files:
                path = os.path.join(root, n)
                try:
                    os.stat(path)
                    os.listxattr(path)
                    with open(path, "rb") as f:
                        while f.read(1 << 20):
                            pass
                except FileNotFoundError:
                    pass


def main():
    mnt, records, prefix = sys.argv[1:4]
    procs = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    if procs <= 1:
        work(mnt, records, prefix, 0, None)
        return
    shared = os.path.join(mnt, f"{prefix}-shared")
    os.mkdir(shared)
    with open(os.path.join(shared, "blocks"), "wb") as f:
        f.truncate(procs * SHARED_SLOT)
        os.fsync(f.fileno())
    fsync_path(shared)
    fsync_path(mnt)
    pids = []
    for i in range(procs):
        pid = os.fork()
        if pid == 0:
            try:
                work(mnt, records if i == 0 else f"{records}.w{i}", f"{prefix}w{i}", i, shared)
            finally:
                os._exit(1)
        pids.append(pid)
    for _ in range(2):
        if os.fork() == 0:
            try:
                read_all(mnt)
            finally:
                os._exit(1)
    # A worker that stops early (an error) fails the round: the guest must
    # still be running when the host kills it.
    _, status = os.wait()
    sys.exit(f"a worker ended early (status {status})")


main()
