#!/usr/bin/env python3
"""table.py RESULTS...: the benchmark table from guest-bench.sh's RESULT
lines (kernel-bench.sh prints it after a run): each number, arborfs's ratio
to each peer and to the best one (above 1: arborfs is faster), and the
target. Several files merge, later ones winning (a before run of arborfs
alone against the peers of another run)."""
import sys
res = {}
for path in sys.argv[1:]:
    for line in open(path):
        p = line.split()
        if len(p) == 4 and p[0] == "RESULT":
            res.setdefault(p[2], {})[p[1]] = float(p[3])
res.pop("missing", None)
# Targets (issue 13), as arborfs's speed over the best peer's: for times
# (metrics in _seconds) the peer's time over arborfs's, so above 1 is faster.
targets = {
    "seq_write_MiBps": 1.0, "seq_read_MiBps": 1.0, "seq_write_4jobs_MiBps": 1.0,
    "seq_read_4jobs_MiBps": 1.0, "rand_read_cold_4k_iops": 1.0, "rand_write_fsync_iops": 1.2,
    "rand_write_fsync32_iops": 1.2, "fsmark_fsync_files_per_s": 2.0,
    "fsmark_fsync_4threads_files_per_s": 1.2, "untar_sync_seconds": 1.25, "rm_rf_sync_seconds": 1.25,
}
def speed(metric, a, v):
    if not a or not v:
        return None
    return v / a if metric.endswith("_seconds") else a / v
peers = [f for f in ("ext4", "xfs", "btrfs") if any(f in m for m in res.values())]
variants = [f for f in ("arborfs-nocsum",) if any(f in m for m in res.values())]
print(f"\n{'metric':36}{'arborfs':>10}" + "".join(f"{f:>16}" for f in variants)
      + "".join(f"{f:>10}{'ratio':>7}" for f in peers)
      + f"{'vs best':>9}{'target':>8}")
for metric, by_fs in res.items():
    a = by_fs.get("arborfs", 0)
    row = f"{metric:36}{a:>10.1f}" + "".join(f"{by_fs.get(f, 0):>16.1f}" for f in variants)
    ratios = []
    for f in peers:
        r = speed(metric, a, by_fs.get(f))
        row += f"{by_fs[f]:>10.1f}{r:>7.2f}" if r is not None else f"{'-':>10}{'-':>7}"
        if r is not None:
            ratios.append(r)
    best = min(ratios) if ratios else None
    want = targets.get(metric)
    row += f"{best:>9.2f}" if best is not None else f"{'-':>9}"
    if want is not None and best is not None:
        row += f"{want:>8.2f} {'met' if best >= want else 'missed'}"
    print(row)
