#!/usr/bin/env python3
"""Crash-test check (guest, after the crash and a fresh mount): everything
workload.py recorded as durable is there with its exact content.

usage: verify.py RECORDS
"""
import hashlib
import os
import sys

# A file with UNLINK but no GONE may be present (intact) or absent. A block
# with a WRITING after its last RANGE may hold either: the cut came between
# the newer write and its record.
files, gone, logs, maybe_gone, ranges, rewriting = {}, set(), {}, set(), {}, {}
with open(sys.argv[1]) as f:
    for line in f:
        parts = line.split()
        if not line.endswith("\n") or not parts:
            continue  # a record cut by the crash
        if parts[0] == "FILE":
            files[parts[1]] = (parts[2], int(parts[3]))
            gone.discard(parts[1])
        elif parts[0] == "UNLINK":
            maybe_gone.add(parts[1])
        elif parts[0] == "GONE":
            gone.add(parts[1])
            maybe_gone.discard(parts[1])
            files.pop(parts[1], None)
        elif parts[0] == "LOG":
            logs[parts[1]] = (int(parts[2]), parts[3])
        elif parts[0] == "WRITING":
            rewriting[(parts[1], int(parts[2]))] = parts[4]
        elif parts[0] == "RANGE":
            # The latest write of a block is the one that must be there.
            ranges[(parts[1], int(parts[2]))] = (int(parts[3]), parts[4])
            rewriting.pop((parts[1], int(parts[2])), None)

bad = 0
for path, (sha, size) in files.items():
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        if path in maybe_gone:
            continue  # the cut came between the unlink and its record
        print(f"fsync'd file {path}: missing")
        bad += 1
        continue
    except OSError as e:
        print(f"fsync'd file {path}: {e}")
        bad += 1
        continue
    if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
        print(f"fsync'd file {path}: {len(data)} bytes, want {size}, content differs")
        bad += 1
for path in gone:
    if os.path.exists(path):
        print(f"deleted (and fsync'd) file {path} is back")
        bad += 1
for path, (length, sha) in logs.items():
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < length or hashlib.sha256(data[:length]).hexdigest() != sha:
        print(f"log {path}: {len(data)} bytes, the first {length} fsync'd bytes differ")
        bad += 1
for (path, offset), (length, sha) in ranges.items():
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(length)
    if hashlib.sha256(data).hexdigest() not in (sha, rewriting.get((path, offset))):
        print(f"{path}: the fsync'd {length} bytes at {offset} differ")
        bad += 1
print(f"crash check: {len(files)} files, {len(gone)} deletions, {len(logs)} logs, "
      f"{len(ranges)} blocks: "
      f"{'ok' if not bad else f'{bad} problems'}")
sys.exit(1 if bad else 0)
