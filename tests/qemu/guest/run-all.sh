#!/usr/bin/env bash
# Guest side of the QEMU suite (run by run-tests.sh inside the test kernel).
# Disks: vda plain, vdb zstd+xxhash64, vdc lz4, vdd zeros (not arborfs),
# vde broken superblocks, vdf future version, vdg broken dirents node,
# vdh broken file data, vdi changes only in the journal; vdj, vdk, vdl blank
# (read-write tests, rw.sh). $1 is the host work dir (visible read-only), $2
# the arborfs tool; further arguments pick tests by name (default: all).
set -uo pipefail
WORK=$1
ARBORFS=$2
shift 2
TREE=$WORK/tree
HERE=$(cd "$(dirname "$0")/.." && pwd)
# The copy of the module the runner shared with the guest (it loaded it).
KO=$(ls /run/arborfs/.guest/modules/*arborfs.ko | head -n1)
passed=0 failed=0

# run NAME FUNCTION: one test; its output is kept only when it fails.
run() {
	local name=$1 out start=$SECONDS
	if out=$("$2" 2>&1); then
		echo "PASS $name ($((SECONDS - start)) s)"; passed=$((passed + 1))
	else
		echo "FAIL $name ($((SECONDS - start)) s)"; echo "$out" | sed 's/^/    /'; failed=$((failed + 1))
	fi
	umount /mnt 2>/dev/null || true
}

must_fail() { if "$@"; then echo "unexpectedly succeeded: $*"; return 1; fi; return 0; }
# (Not `dmesg | grep -q`: grep quits at the first match and pipefail then sees dmesg's SIGPIPE.)
log_has() { dmesg >/tmp/dmesg.txt; grep -q -- "$1" /tmp/dmesg.txt || { echo "kernel log lacks: $1"; tail -5 /tmp/dmesg.txt; return 1; }; }

# The source tree reaches the guest over 9p, which shows user.* xattrs only;
# trusted.* is checked by name below.
tree() {
	mount -t arborfs -o ro "/dev/$1" /mnt || return 1
	python3 "$HERE/compare-tree.py" --xattr-prefix user. "$TREE" /mnt || return 1
	[[ $(getfattr --only-values -n trusted.md5 /mnt/random.bin | od -An -tx1 | tr -d ' \n') == 0123456789abcdef ]]
}
t_tree_plain() { tree vda; }
t_tree_zstd() { tree vdb; }
t_tree_lz4() { tree vdc; }

t_hardlinks_share_an_inode() {
	mount -t arborfs -o ro /dev/vda /mnt || return 1
	local a b c
	a=$(stat -c %i /mnt/text.txt) b=$(stat -c %i /mnt/a/hardlink) c=$(stat -c %i /mnt/a/b/hardlink2)
	[[ $a == "$b" && $a == "$c" ]] || { echo "inodes $a $b $c"; return 1; }
	[[ $(stat -c %h /mnt/text.txt) == 3 ]]
}

t_statfs() {
	mount -t arborfs -o ro /dev/vda /mnt || return 1
	local type bsize blocks bfree bavail files
	# shellcheck disable=SC2046 # (the guest has no /dev/fd for <(...))
	set -- $(stat -f -c '%t %S %b %f %a %c' /mnt)
	type=$1 bsize=$2 blocks=$3 bfree=$4 bavail=$5 files=$6
	echo "type=$type bsize=$bsize blocks=$blocks free=$bfree avail=$bavail files=$files"
	[[ $type == 41524246 && $bsize == 4096 ]] || return 1
	# 256 MiB image: nearly all of it is usable, and the tree's data is used.
	((blocks > 60000 && blocks <= 65536)) || return 1
	((bfree < blocks && bavail <= bfree)) || return 1
	(((blocks - bfree) * 4096 >= 2000000)) || return 1
	df -T /mnt | grep -q arborfs
}

t_read_only() {
	mount -t arborfs -o ro /dev/vda /mnt || return 1
	must_fail touch /mnt/newfile 2>/dev/null || return 1
	must_fail setfattr -n user.x -v 1 /mnt/text.txt 2>/dev/null
}

t_not_arborfs() { must_fail mount -t arborfs /dev/vdd /mnt && log_has "arborfs: vdd: cannot mount"; }
t_broken_superblocks() { must_fail mount -t arborfs /dev/vde /mnt && log_has "arborfs: vde: cannot mount"; }
t_future_version() {
	must_fail mount -t arborfs /dev/vdf /mnt && log_has "arborfs: vdf: cannot mount: unsupported format version"
}

t_broken_node() {
	mount -t arborfs -o ro /dev/vdg /mnt || return 1
	must_fail ls /mnt >/dev/null || return 1
	log_has "bad dirents b-tree node" || log_has "checksum mismatch in b-tree node" || return 1
	umount /mnt
}

t_broken_data() {
	mount -t arborfs -o ro /dev/vdh /mnt || return 1
	must_fail cat /mnt/random.bin >/dev/null || return 1
	log_has "read of inode" || return 1
	cmp /mnt/text.txt "$TREE/text.txt"
}

t_journal_replay() {
	mount -t arborfs -o ro /dev/vdi /mnt || return 1
	cmp /mnt/replayed/file "$WORK/replayed.expected" || return 1
	[[ $(getfattr --only-values -n user.replayed /mnt/replayed/file) == yes ]]
}

t_bad_options() {
	must_fail mount -t arborfs -o no_such_option /dev/vda /mnt || return 1
	must_fail mount -t arborfs /dev/vda:/dev/vdb /mnt
}

t_mount_cycles() {
	local i
	for i in 1 2 3 4 5; do
		rmmod arborfs || return 1
		insmod "$KO" || return 1
		mount -t arborfs -o ro /dev/vdb /mnt || return 1
		ls -R /mnt >/dev/null || return 1
		cat /mnt/a/repetitive >/dev/null || return 1
		umount /mnt || return 1
	done
	grep -q arborfs /proc/filesystems
}

# Images the host's fuzzer mutated ($WORK/fuzzed, checksums kept valid):
# each is mounted read-write through a loop device, walked, read, written
# to and unmounted. Refusing to mount is fine; the kernel log must stay free
# of oopses and warnings (run-tests.sh checks), and nothing may hang.
t_fuzzed_images() {
	local img dev n=0 mounted=0 f
	for img in "$WORK"/fuzzed/*.img; do
		[[ -f $img ]] || continue
		n=$((n + 1))
		cp --sparse=always "$img" /tmp/fuzzed.img || return 1
		dev=$(losetup -f --show /tmp/fuzzed.img) || return 1
		if mount -t arborfs "$dev" /mnt 2>/dev/null; then
			mounted=$((mounted + 1))
			find /mnt -xdev >/dev/null 2>&1
			find /mnt -xdev -type f -size -4M -exec cat {} + >/dev/null 2>&1
			getfattr -R -d -m - /mnt >/dev/null 2>&1
			echo written >/mnt/fuzz-write 2>/dev/null && rm -f /mnt/fuzz-write 2>/dev/null
			mkdir /mnt/fuzz-dir 2>/dev/null && rmdir /mnt/fuzz-dir 2>/dev/null
			for f in /mnt/*; do
				[[ -f $f && ! -L $f ]] && { echo appended >>"$f"; } 2>/dev/null
				break
			done
			sync
			umount /mnt || { echo "$img: umount failed"; losetup -d "$dev"; return 1; }
		fi
		losetup -d "$dev" || return 1
		rm -f /tmp/fuzzed.img
	done
	echo "fuzzed images: $n tried, $mounted mounted"
	((n > 0))
}

# shellcheck source=rw.sh
source "$HERE/guest/rw.sh"

TESTS=(tree_plain tree_zstd tree_lz4 hardlinks_share_an_inode statfs read_only not_arborfs
	broken_superblocks future_version broken_node broken_data journal_replay bad_options mount_cycles
	fuzzed_images "${RW_TESTS[@]}")
(($#)) && TESTS=("$@")
for t in "${TESTS[@]}"; do
	run "$t" "t_$t"
done
echo "guest: $passed passed, $failed failed"
((failed == 0))
