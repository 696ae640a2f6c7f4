#!/usr/bin/env bash
# guest-bench.sh: run in the QEMU guest by kernel-bench.sh. For each file
# system in $FILESYSTEMS that this kernel has: make it on /dev/vda, mount it,
# run fio (sequential 1 MiB write and cold read, random 4 KiB writes with
# fsync) and fs_mark (small-file creation), and print one line per number:
#   RESULT <fs> <metric> <value>
# usage: guest-bench.sh ARBORFS_TOOL
set -uo pipefail
ARBORFS=$1
SIZE=${BENCH_SIZE:-1G}
RUNTIME=${BENCH_RUNTIME:-20}
FILESYSTEMS=${FILESYSTEMS:-arborfs ext4 xfs btrfs}

mkfs_for() {
	case $1 in
	arborfs) "$ARBORFS" format -q --force /dev/vda ;;
	ext4) mkfs.ext4 -F -q /dev/vda ;;
	xfs) mkfs.xfs -f -q /dev/vda ;;
	btrfs) mkfs.btrfs -f -q /dev/vda ;;
	esac
}

# fio_num JSON_FIELD ARGS...: one fio job, print the field of its first job.
fio_num() {
	local field=$1; shift
	fio --output-format=json --name=bench --ioengine=psync "$@" >/tmp/fio.json 2>/tmp/fio.err || {
		cat /tmp/fio.err >&2; echo 0; return; }
	python3 -c "import json,sys; j=json.load(open('/tmp/fio.json'))['jobs'][0]; print(eval('j' + sys.argv[1]))" "$field"
}

for fs in $FILESYSTEMS; do
	grep -qw "$fs" /proc/filesystems || { echo "RESULT $fs missing 1"; continue; }
	mkfs_for "$fs" >/dev/null 2>&1 || { echo "bench: mkfs $fs failed"; continue; }
	mount -t "$fs" /dev/vda /mnt || { echo "bench: mount $fs failed"; continue; }
	echo "RESULT $fs seq_write_MiBps $(fio_num "['write']['bw']/1024" --filename=/mnt/seq --rw=write --bs=1M --size="$SIZE" --end_fsync=1)"
	sync && echo 3 >/proc/sys/vm/drop_caches
	echo "RESULT $fs seq_read_MiBps $(fio_num "['read']['bw']/1024" --filename=/mnt/seq --rw=read --bs=1M --size="$SIZE")"
	rm -f /mnt/seq && sync
	echo "RESULT $fs rand_write_fsync_iops $(fio_num "['write']['iops']" --filename=/mnt/rand --rw=randwrite --bs=4k --size=64M --fsync=1 --time_based --runtime="$RUNTIME")"
	rm -f /mnt/rand && sync
	mkdir -p /mnt/fsm
	# fs_mark writes fs_log.txt into the current directory: keep it off the read-only root.
	files=$(cd /tmp && fs_mark -d /mnt/fsm -n 5000 -s 4096 -t 1 -S 0 -L 1 2>/dev/null | awk 'NF == 5 && $2 ~ /^[0-9]+$/ {print $4}' | tail -1)
	echo "RESULT $fs fsmark_create_nosync_files_per_s ${files:-0}"
	umount /mnt
done
