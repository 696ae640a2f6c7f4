#!/usr/bin/env bash
# run-tests.sh: the QEMU suite. Builds test images on the host (a rich tree in
# three encodings, and bad input), boots the test kernel once with them as
# virtio disks, loads arborfs.ko, runs tests/qemu/guest/run-all.sh, and fails
# on any failed test or any BUG, WARNING, lockdep report or oops in the log.
# Arguments: guest test names to run (default: all, see guest/run-all.sh).
# Env: ARBORFS (tool), KO (module), KERNEL (bzImage); defaults are the builds.
#      STRESS_SECONDS: how long stress-ng runs (default 90).
#      FUZZ_IMAGES: how many mutated images t_fuzzed_images mounts (default 60).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
source "$HERE/env.sh"
# Under the repo so the guest sees it through the read-only 9p root.
WORK=$ROOT/tests/out/qemu
rm -rf "$WORK" && mkdir -p "$WORK"

"$HERE/make-tree.sh" "$WORK/tree"
mk() { "$ARBORFS" format -q --force "$@"; }
mk --fs-size 256M --source "$WORK/tree" "$WORK/plain.img"
mk --fs-size 256M --compression zstd:3 --data-checksum xxhash64 --metadata-checksum xxhash64 \
	--btree-node-size 16k --source "$WORK/tree" "$WORK/zstd.img"
mk --fs-size 128M --compression lz4 --source "$WORK/tree" "$WORK/lz4.img"
truncate -s 64M "$WORK/zeros.img"
# Changes that exist only in the journal, as after a crash.
mk --fs-size 64M "$WORK/journal.img"
"$ROOT/target/release/examples/crashed_image" "$WORK/journal.img" >/dev/null
python3 -c 'import sys; sys.stdout.buffer.write(bytes(i % 253 for i in range(200000)))' >"$WORK/replayed.expected"
cp "$WORK/plain.img" "$WORK/badsb.img" && "$HERE/damage.py" "$WORK/badsb.img" superblocks
cp "$WORK/plain.img" "$WORK/future.img" && "$HERE/damage.py" "$WORK/future.img" version 2
dirents_root=$("$ARBORFS" show-super --json "$WORK/plain.img" | python3 -c 'import json,sys; print(json.load(sys.stdin)["roots"]["dirents"]["offset"])')
cp "$WORK/plain.img" "$WORK/badnode.img" && "$HERE/damage.py" "$WORK/badnode.img" byte $((dirents_root + 200))
random_ino=$("$ARBORFS" dump --btree dirents "$WORK/plain.img" | sed -n 's/.*"random.bin" -> \([0-9]*\).*/\1/p')
data_off=$("$ARBORFS" dump --btree extents "$WORK/plain.img" | grep "^  $random_ino:" | head -1 | sed -n 's/.*offset: \([0-9]*\).*/\1/p')
cp "$WORK/plain.img" "$WORK/baddata.img" && "$HERE/damage.py" "$WORK/baddata.img" byte $((data_off + 5000))

# Mutated images (tests/imagefuzz) for t_fuzzed_images: FUZZ_IMAGES of them.
"$ROOT/target/release/arborfs-imagefuzz" --arborfs "$ARBORFS" --work "$WORK/imagefuzz" \
	--seed "${FUZZ_SEED:-11}" --cases 100000 --export "$WORK/fuzzed" --export-count "${FUZZ_IMAGES:-60}" \
	--export-only >/dev/null

# Blank disks for the read-write tests (sparse files).
truncate -s 2G "$WORK/rw.img"
truncate -s 64M "$WORK/small.img"
truncate -s 512M "$WORK/kernel-tree.img"

disks=()
for i in plain zstd lz4 zeros badsb future badnode baddata journal rw small kernel-tree; do
	disks+=(--disk "$WORK/$i.img")
done
log=$WORK/console.log
rc=0
"$HERE/run-guest.sh" --kernel "$KERNEL" "${disks[@]}" --module "$KO" --timeout 2700 --quiet --log "$log" \
	-- env STRESS_SECONDS="${STRESS_SECONDS:-90}" bash "$HERE/guest/run-all.sh" "$WORK" "$ARBORFS" "$@" || rc=$?
if grep -qE '(BUG|WARNING|INFO): |possible (circular|recursive) locking|Call Trace:|Oops|Busy inodes after unmount|kmemleak: .* new suspected' "$log"; then
	echo "qemu-test: the kernel log reports problems:" >&2
	grep -nE -A20 '(BUG|WARNING|INFO): |possible (circular|recursive) locking|Oops' "$log" | head -60 >&2
	rc=1
fi
# The tree the kernel wrote (t_kernel_writes_tree) reads back identically with the tools.
if (($# == 0)) || [[ " $* " == *" kernel_writes_tree "* ]]; then
	rm -rf "$WORK/restored" && mkdir "$WORK/restored"
	if "$ARBORFS" restore "$WORK/kernel-tree.img" "$WORK/restored" >/dev/null &&
		python3 "$HERE/compare-tree.py" --xattr-prefix user. "$WORK/tree" "$WORK/restored"; then
		echo "PASS host_restores_kernel_tree"
	else
		echo "FAIL host_restores_kernel_tree"
		rc=1
	fi
fi
exit "$rc"
