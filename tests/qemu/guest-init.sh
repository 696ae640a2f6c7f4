#!/bin/sh
# guest-init.sh: PID 1 of the arborfs QEMU test guest (started by run-guest.sh).
# The root file system is the host's own, read-only over virtio-9p. This script
# mounts proc/sys/dev and tmpfs on /tmp /run /mnt /var/tmp (the host root stays
# visible read-only at /run/host, for files under the host's /tmp), mounts the run's
# read-write 9p share (tag "arborfs") on /run/arborfs, loads the requested
# modules, runs the command (or an interactive shell), prints
#   ARBORFS-EXIT-<nonce> <status>
# on the console and ends the guest with `reboot -f` (QEMU runs with -no-reboot).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HOME=/tmp
TERM=${TERM:-linux}
export PATH HOME TERM
SHARE=/run/arborfs
NONCE=none

finish() {
	sync
	printf '\nARBORFS-EXIT-%s %s\n' "$NONCE" "$1"
	[ -d "$SHARE/.guest" ] && echo "$1" >"$SHARE/.guest/status"
	sync
	if [ -x /bin/busybox ]; then /bin/busybox reboot -f; else reboot -f; fi
	sleep 5
	exit "$1"   # init exiting panics the kernel; panic=-1 then ends QEMU
}

mounts() {
	mount -t proc -o nosuid,nodev,noexec proc /proc
	mount -t sysfs -o nosuid,nodev,noexec sysfs /sys
	mountpoint -q /dev || mount -t devtmpfs -o nosuid devtmpfs /dev
	mkdir -p /dev/pts /dev/shm
	mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts 2>/dev/null || true
	mount -t tmpfs -o nosuid,nodev tmpfs /dev/shm 2>/dev/null || true
	mount -t tmpfs -o mode=755 tmpfs /run || return 1
	# The host's /tmp etc. stay reachable under /run/host once tmpfs covers them.
	mkdir -p /run/host && mount --bind / /run/host && mount -o remount,bind,ro /run/host
	for d in /tmp /mnt /var/tmp; do
		mount -t tmpfs -o mode=1777 tmpfs "$d" || return 1
	done
	mkdir -p "$SHARE"
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=none arborfs "$SHARE"
}

load_modules() {
	[ -f "$SHARE/.guest/modules.list" ] || return 0
	while IFS= read -r ko; do
		[ -n "$ko" ] || continue
		echo "guest-init: insmod $ko"
		insmod "$ko" || { rc=$?; echo "guest-init: insmod $ko failed ($rc)"; return "$rc"; }
	done <"$SHARE/.guest/modules.list"
}

mounts || { echo "guest-init: mounting failed"; finish 120; }
# shellcheck disable=SC1091
[ -f "$SHARE/.guest/env" ] && . "$SHARE/.guest/env"
hostname arborfs-guest 2>/dev/null || true
load_modules || finish $?
# The tmpfs mounts above hide host directories under /tmp, /var/tmp and /run:
# a checkout there (a CI clone in /tmp) is bound back at its own path, so
# host paths work unchanged in the guest.
for dir in ${ARBORFS_ROOT:-} ${ARBORFS_CWD:=/}; do
	case $dir in
	/tmp/* | /var/tmp/* | /run/*)
		[ -d "/run/host$dir" ] && mkdir -p "$dir" && mount --bind "/run/host$dir" "$dir" ;;
	esac
done
cd "$ARBORFS_CWD" 2>/dev/null || cd /
export ARBORFS_OUT=$SHARE

if [ -f "$SHARE/.guest/cmd" ]; then
	printf 'ARBORFS-START-%s\n' "$NONCE"
	if [ -f "$SHARE/.guest/interactive" ]; then
		# The console becomes the command's controlling terminal.
		setsid -c bash "$SHARE/.guest/cmd" </dev/ttyS0 >/dev/ttyS0 2>&1
	else
		bash "$SHARE/.guest/cmd" </dev/null
	fi
	finish $?
else
	echo "guest-init: interactive shell; exit it to stop the guest"
	setsid -c bash -l </dev/ttyS0 >/dev/ttyS0 2>&1
	finish $?
fi
