#!/usr/bin/env bash
# kernel-bench.sh: arborfs against ext4, xfs and btrfs in the same QEMU guest
# on the same virtual disk (a fresh sparse 4 GiB image per run, virtio-blk).
# Builds the benchmark kernel (the test kernel plus btrfs, its own cache dir)
# and arborfs.ko for it, runs guest-bench.sh, and prints each number with
# arborfs's ratio to each peer (above 1: arborfs is faster). Not part of CI.
# Env: BENCH_SIZE (fio sequential size, default 1G), BENCH_RUNTIME (random
# write seconds, default 20), FILESYSTEMS.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ARBORFS=${ARBORFS:-$ROOT/target/release/arborfs}
OUT=$ROOT/tests/out/bench
mkdir -p "$OUT"
"$ROOT/tests/kernel/install-deps.sh"
# The benchmark kernel: tests/kernel/ with this directory's fragment appended,
# built by the same script into its own cache (~/.cache/arborfs-bench).
mkdir -p "$OUT/kernel"
cp "$ROOT"/tests/kernel/*.sh "$OUT/kernel/"
cat "$ROOT/tests/kernel/config.fragment" "$HERE/config.fragment" >"$OUT/kernel/config.fragment"
KDIR=$(ARBORFS_CACHE=${ARBORFS_BENCH_CACHE:-$HOME/.cache/arborfs-bench} "$OUT/kernel/build.sh" | tail -n1)
# The module, built for this kernel in its own output copy of the sources.
rm -rf "$OUT/module" && mkdir -p "$OUT/module"
tar -C "$ROOT" --exclude=target -cf - Kbuild fs | tar -C "$OUT/module" -xf -
make -s -C "$KDIR" M="$OUT/module" LLVM=1 RUSTC=/usr/bin/rustc modules
rm -f "$OUT/disk.img" && truncate -s 4G "$OUT/disk.img"
"$ROOT/tests/qemu/run-guest.sh" --kernel "$KDIR/arch/x86/boot/bzImage" --disk "$OUT/disk.img" \
	--module "$OUT/module/arborfs.ko" --timeout 3600 --quiet --log "$OUT/console.log" \
	-- bash "$HERE/guest-bench.sh" "$ARBORFS" | tee "$OUT/results.txt"
python3 - "$OUT/results.txt" <<'PY'
import sys
res = {}
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 4 and p[0] == "RESULT":
        res.setdefault(p[2], {})[p[1]] = float(p[3])
res.pop("missing", None)
peers = [f for f in ("ext4", "xfs", "btrfs") if any(f in m for m in res.values())]
print(f"\n{'metric':34}{'arborfs':>10}" + "".join(f"{f:>10}{'ratio':>7}" for f in peers))
for metric, by_fs in res.items():
    a = by_fs.get("arborfs", 0)
    row = f"{metric:34}{a:>10.1f}"
    for f in peers:
        v = by_fs.get(f)
        row += f"{v:>10.1f}{a / v:>7.2f}" if v else f"{'-':>10}{'-':>7}"
    print(row)
PY
