#!/usr/bin/env python3
"""Crash-test workload (guest): write files, fsync them and their directory,
append to a log with fsync, delete some files, and leave un-fsync'd noise
behind; after each durable step, append a record to RECORDS (on the host,
over 9p without caching, so a record exists only if the step completed).
Runs until the guest is killed.

usage: workload.py MNT RECORDS PREFIX
records: FILE path sha256 size | UNLINK path | GONE path | LOG path length sha256-of-prefix
(UNLINK is written before the unlink, GONE after the directory's fsync: a
power cut between the two may leave the file either way.)
"""
import hashlib
import os
import random
import sys

mnt, records, prefix = sys.argv[1:4]
rec = os.open(records, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
top = os.path.join(mnt, prefix)
os.mkdir(top)


def note(line):
    os.write(rec, (line + "\n").encode())


def fsync_path(path, flags=os.O_RDONLY):
    fd = os.open(path, flags)
    os.fsync(fd)
    os.close(fd)


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
    name = os.path.join(top, f"f{seq}")
    data = rng.randbytes(rng.choice([0, 100, 4096, 10000, 65536, 300000, 1 << 20]))
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, data)
    os.fsync(fd)
    os.close(fd)
    fsync_path(top)
    note(f"FILE {name} {hashlib.sha256(data).hexdigest()} {len(data)}")

    chunk = rng.randbytes(rng.randrange(1, 20000))
    os.write(log, chunk)
    os.fsync(log)
    log_hash.update(chunk)
    log_len += len(chunk)
    note(f"LOG {log_path} {log_len} {log_hash.hexdigest()}")

    if seq % 5 == 0:
        victim = os.path.join(top, f"f{seq - 3}")
        note(f"UNLINK {victim}")
        os.unlink(victim)
        fsync_path(top)
        note(f"GONE {victim}")
    if seq % 3 == 0:
        # Noise nobody waits for: a rewrite of an older file without fsync.
        with open(os.path.join(top, f"noise{seq % 4}"), "wb") as f:
            f.write(rng.randbytes(2 << 20))
