#!/usr/bin/env bash
# guest-bench.sh: run in the QEMU guest by kernel-bench.sh. For each file
# system in $FILESYSTEMS that this kernel has: make it on /dev/vda, mount it,
# run fio (sequential 1 MiB write and cold read with 1 and 4 jobs, cold random
# 4 KiB reads, random 4 KiB writes with an fsync every write and every 32,
# the latter also over a file of BENCH_SIZE),
# fs_mark (4 KiB files: no fsync; an fsync each with 1 and 4 threads) and an
# untar and rm -rf of $TREE_TAR with a final sync, and print one line per
# number (metrics ending in _seconds are times, lower is better):
#   RESULT <fs> <metric> <value>
# usage: guest-bench.sh ARBORFS_TOOL
set -uo pipefail
ARBORFS=$1
SIZE=${BENCH_SIZE:-1G}
# Each of the four jobs writes a quarter, so both runs move the same bytes.
SIZE4=${BENCH_SIZE4:-256M}
RUNTIME=${BENCH_RUNTIME:-20}
FILESYSTEMS=${FILESYSTEMS:-arborfs ext4 xfs btrfs}

mkfs_for() {
	case $1 in
	arborfs) "$ARBORFS" format -q --force /dev/vda ;;
	# Without data checksums: how much of the time is the checksum's.
	arborfs-nocsum) "$ARBORFS" format -q --force --data-checksum none /dev/vda ;;
	arborfs-crc32c) "$ARBORFS" format -q --force --data-checksum crc32c /dev/vda ;;
	arborfs-xxhash) "$ARBORFS" format -q --force --data-checksum xxhash64 /dev/vda ;;
	ext4) mkfs.ext4 -F -q /dev/vda ;;
	xfs) mkfs.xfs -f -q /dev/vda ;;
	btrfs) mkfs.btrfs -f -q /dev/vda ;;
	esac
}

# With BENCH_PERF=1 and a kernel with perf events (the bench kernel), each
# arborfs workload runs under `perf record -a` (cpu-clock samples, every
# CPU) and profile() prints where the CPUs were as "PERF fs workload".
PERF=
[[ ${BENCH_PERF:-0} == 1 && -e /proc/sys/kernel/perf_event_paranoid ]] && command -v perf >/dev/null && PERF=1
sampled() {
	if [[ -n $PERF && ${fs%%-*} == arborfs ]]; then
		perf record -q -a -g -e cpu-clock -o /tmp/perf.data -- "$@"
	else
		"$@"
	fi
}

# fio_num JSON_FIELD ARGS...: one fio job, print the field of its first job.
fio_num() {
	local field=$1; shift
	sampled fio --output-format=json --name=bench --ioengine=psync "$@" >/tmp/fio.json 2>/tmp/fio.err || {
		cat /tmp/fio.err >&2; echo 0; return; }
	python3 -c "import json,sys; j=json.load(open('/tmp/fio.json'))['jobs'][0]; print(eval('j' + sys.argv[1]))" "$field"
}

# fs_mark_rate THREADS SYNC: files per second creating 4 KiB files
# (SYNC 1: an fsync per file); one directory per thread.
fs_mark_rate() {
	local dirs=() i
	for ((i = 0; i < $1; i++)); do dirs+=(-d "/mnt/fsm$i"); mkdir -p "/mnt/fsm$i"; done
	# fs_mark writes fs_log.txt into the current directory: keep it off the read-only root.
	(cd /tmp && sampled fs_mark "${dirs[@]}" -n "$FSMARK_FILES" -s 4096 -S "$2" -L 1 2>/dev/null) |
		awk 'NF == 5 && $2 ~ /^[0-9]+$/ {print $4}' | tail -1
	rm -rf /mnt/fsm* && sync
}

# seconds CMD...: wall time of CMD.
seconds() {
	local t0 t1
	t0=$(date +%s.%N)
	sampled "$@" >/dev/null 2>&1 || { echo "bench: $* failed" >&2; echo 0; return; }
	t1=$(date +%s.%N)
	python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 3))" "$t0" "$t1"
}

cold() { sync && echo 3 >/proc/sys/vm/drop_caches; }

# Where an arborfs workload's time went: the mount's counters in
# /proc/self/mountstats (engine calls, time holding and waiting for the
# engine mutex, device waits inside it, reads done outside it) since the
# previous call, as "PROFILE fs workload name=delta ...".
PREV=
profile() {
	[[ ${fs%%-*} == arborfs ]] || return 0
	local now
	now=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats | grep -o '[a-z_]*=[0-9]*' | tr '\n' ' ')
	awk -v name="$1" -v fs="$fs" -v now="$now" -v prev="$PREV" 'BEGIN {
		split(prev, b, " "); for (i in b) { split(b[i], kv, "="); old[kv[1]] = kv[2] }
		n = split(now, a, " "); line = "PROFILE " fs " " name
		for (i = 1; i <= n; i++) { split(a[i], kv, "="); line = line " " kv[1] "=" kv[2] - old[kv[1]] }
		print line }'
	PREV=$now
	if [[ -n $PERF && -f /tmp/perf.data ]]; then
		# Self time by symbol (idle and the guest's own perf left in), then callers of the top ones.
		perf report -i /tmp/perf.data --stdio --no-children --sort sym --percent-limit 1.5 -g none 2>/dev/null |
			grep -v '^#' | grep -v '^$' | head -25 | sed "s/^/PERF $fs $1 /"
		rm -f /tmp/perf.data
	fi
}
FSMARK_FILES=${BENCH_FSMARK_FILES:-2000}
# The untar source, copied into the guest's memory first so that 9p is not timed.
TREE=${TREE_TAR:-}
[[ -n $TREE && -f $TREE ]] && cp "$TREE" /dev/shm/tree.tar

for fs in $FILESYSTEMS; do
	grep -qw "${fs%%-*}" /proc/filesystems || { echo "RESULT $fs missing 1"; continue; }
	mkfs_for "$fs" >/dev/null 2>&1 || { echo "bench: mkfs $fs failed"; continue; }
	mount -t "${fs%%-*}" /dev/vda /mnt || { echo "bench: mount $fs failed"; continue; }
	PREV=
	echo "RESULT $fs seq_write_MiBps $(fio_num "['write']['bw']/1024" --filename=/mnt/seq --rw=write --bs=1M --size="$SIZE" --end_fsync=1)"
	profile seq_write_MiBps
	cold
	echo "RESULT $fs seq_read_MiBps $(fio_num "['read']['bw']/1024" --filename=/mnt/seq --rw=read --bs=1M --size="$SIZE")"
	profile seq_read_MiBps
	cold
	echo "RESULT $fs rand_read_cold_4k_iops $(fio_num "['read']['iops']" --filename=/mnt/seq --rw=randread --bs=4k --size="$SIZE" --time_based --runtime="$RUNTIME")"
	profile rand_read_cold_4k_iops
	rm -f /mnt/seq && sync
	# Four jobs on four files, reported together.
	echo "RESULT $fs seq_write_4jobs_MiBps $(fio_num "['write']['bw']/1024" --directory=/mnt --rw=write --bs=1M --size="$SIZE4" --numjobs=4 --group_reporting --end_fsync=1)"
	profile seq_write_4jobs_MiBps
	cold
	echo "RESULT $fs seq_read_4jobs_MiBps $(fio_num "['read']['bw']/1024" --directory=/mnt --rw=read --bs=1M --size="$SIZE4" --numjobs=4 --group_reporting)"
	profile seq_read_4jobs_MiBps
	rm -f /mnt/bench.* && sync
	echo "RESULT $fs rand_write_fsync_iops $(fio_num "['write']['iops']" --filename=/mnt/rand --rw=randwrite --bs=4k --size=64M --fsync=1 --time_based --runtime="$RUNTIME")"
	profile rand_write_fsync_iops
	rm -f /mnt/rand && sync
	echo "RESULT $fs rand_write_fsync32_iops $(fio_num "['write']['iops']" --filename=/mnt/rand --rw=randwrite --bs=4k --size=64M --fsync=32 --time_based --runtime="$RUNTIME")"
	profile rand_write_fsync32_iops
	rm -f /mnt/rand && sync
	# The same over a file of $SIZE: its extents span many b-tree leaves,
	# all of which random writes dirty (a database's pattern).
	echo "RESULT $fs rand_write_fsync32_big_iops $(fio_num "['write']['iops']" --filename=/mnt/rand --rw=randwrite --bs=4k --size="$SIZE" --fsync=32 --time_based --runtime="$RUNTIME")"
	profile rand_write_fsync32_big_iops
	rm -f /mnt/rand && sync
	echo "RESULT $fs fsmark_create_nosync_files_per_s $(fs_mark_rate 1 0)"
	profile fsmark_create_nosync_files_per_s
	echo "RESULT $fs fsmark_fsync_files_per_s $(fs_mark_rate 1 1)"
	profile fsmark_fsync_files_per_s
	echo "RESULT $fs fsmark_fsync_4threads_files_per_s $(fs_mark_rate 4 1)"
	profile fsmark_fsync_4threads_files_per_s
	if [[ -f /dev/shm/tree.tar ]]; then
		mkdir -p /mnt/untar
		echo "RESULT $fs untar_sync_seconds $(seconds sh -c 'tar -xf /dev/shm/tree.tar -C /mnt/untar && sync')"
		profile untar_sync_seconds
		cold
		echo "RESULT $fs rm_rf_sync_seconds $(seconds sh -c 'rm -rf /mnt/untar && sync')"
		profile rm_rf_sync_seconds
	fi
	umount /mnt
done
