#!/usr/bin/env bash
# kernel-bench.sh: arborfs against ext4, xfs and btrfs in the same QEMU guest
# on the same virtual disk (a fresh, fully written 4 GiB image per run, virtio-blk).
# Builds the benchmark kernel (the test kernel plus btrfs, its own cache dir)
# and arborfs.ko for it, runs guest-bench.sh, and prints each number with
# arborfs's ratio to each peer (above 1: arborfs is faster), its ratio to the
# best peer and the target for it. Not part of CI.
# Env: BENCH_SIZE (fio sequential size, default 1G), BENCH_SIZE4 (per job of
# four, default 256M), BENCH_RUNTIME (random I/O seconds, default 20),
# BENCH_FSMARK_FILES (per thread, default 2000), FILESYSTEMS; BENCH_PERF=1
# prints a perf profile of each arborfs workload (bench kernel only);
# BENCH_KERNEL=test uses the test kernel and KO (default ./arborfs.ko)
# instead: no btrfs, no build.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
ARBORFS=${ARBORFS:-$ROOT/target/release/arborfs}
OUT=$ROOT/tests/out/bench
mkdir -p "$OUT"
"$ROOT/tests/kernel/install-deps.sh"
if [[ ${BENCH_KERNEL:-bench} == test ]]; then
	# The test kernel and its module as `make kernel module` built them: no
	# btrfs, but no 20-minute build either (for before/after comparisons).
	KDIR=$("$ROOT/tests/kernel/build.sh" | tail -n1)
	KO=${KO:-$ROOT/arborfs.ko}
else
	# The benchmark kernel: tests/kernel/ with this directory's fragment
	# appended, built by the same script into its own cache
	# (~/.cache/arborfs-bench).
	mkdir -p "$OUT/kernel"
	cp "$ROOT"/tests/kernel/*.sh "$OUT/kernel/"
	# This directory's fragment overrides the test kernel's: its options are
	# dropped from the test fragment first (build.sh checks every line).
	sed -nE 's/^(# )?(CONFIG_[A-Za-z0-9_]+)[= ].*/\2/p' "$HERE/config.fragment" >"$OUT/kernel/overridden"
	{ grep -vwFf "$OUT/kernel/overridden" "$ROOT/tests/kernel/config.fragment"; cat "$HERE/config.fragment"; } \
		>"$OUT/kernel/config.fragment"
	KDIR=$(ARBORFS_CACHE=${ARBORFS_BENCH_CACHE:-$HOME/.cache/arborfs-bench} "$OUT/kernel/build.sh" | tail -n1)
	# The module, built for this kernel in its own output copy of the sources.
	rm -rf "$OUT/module" && mkdir -p "$OUT/module"
	tar -C "$ROOT" --exclude=target -cf - Kbuild fs | tar -C "$OUT/module" -xf -
	make -s -C "$KDIR" M="$OUT/module" LLVM=1 RUSTC=/usr/bin/rustc modules
	KO=$OUT/module/arborfs.ko
fi
# The untar source: 2500 files of 1 to 40 KiB (about 50 MB) in 50
# directories, incompressible, the same bytes every run.
[[ -f $OUT/tree.tar ]] || python3 - "$OUT/tree.tar" <<'PY'
import io, random, sys, tarfile
rng = random.Random(2500)
with tarfile.open(sys.argv[1], "w") as tar:
    for i in range(2500):
        data = rng.randbytes(rng.randint(1, 40) * 1024)
        info = tarfile.TarInfo(f"tree/d{i % 50:02}/f{i:04}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
PY
# Written out in full: on a sparse image the first file system measured
# would also pay for the host allocating the image's blocks.
rm -f "$OUT/disk.img" && dd if=/dev/zero of="$OUT/disk.img" bs=16M count=256 conv=fsync status=none
# Guest RAM allocated up front: otherwise the first file system measured
# pays a host page fault per guest page its page cache first touches (its
# first 1 GiB write ran at a quarter of the speed of the same write later).
"$ROOT/tests/qemu/run-guest.sh" --kernel "$KDIR/arch/x86/boot/bzImage" --disk "$OUT/disk.img" \
	--module "$KO" --timeout 5400 --quiet --log "$OUT/console.log" --prealloc \
	-- env TREE_TAR="$OUT/tree.tar" FILESYSTEMS="${FILESYSTEMS:-arborfs ext4 xfs btrfs}" \
	BENCH_SIZE="${BENCH_SIZE:-1G}" BENCH_SIZE4="${BENCH_SIZE4:-256M}" BENCH_RUNTIME="${BENCH_RUNTIME:-20}" \
	BENCH_FSMARK_FILES="${BENCH_FSMARK_FILES:-2000}" BENCH_PERF="${BENCH_PERF:-0}" bash "$HERE/guest-bench.sh" "$ARBORFS" | tee "$OUT/results.txt"
python3 "$HERE/table.py" "$OUT/results.txt"
