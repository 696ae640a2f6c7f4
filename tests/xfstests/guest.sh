#!/usr/bin/env bash
# guest.sh: the guest side of `make xfstests` (run by tests/xfstests/run.sh
# inside the test kernel, root over read-only 9p). Sets up what fstests
# expects of a machine, then runs its ./check on the given tests.
# usage: guest.sh FSTESTS CONFIG RESULTS SECTION EXCLUDE BINDIR FSTYP WATCH TEST...
#   FSTESTS  the built fstests tree (read-only here)
#   CONFIG   the local.config to use (HOST_OPTIONS)
#   RESULTS  where results go (RESULT_BASE, on the read-write share)
#   SECTION  the config section to run
#   EXCLUDE  a file of tests to leave out (check -E)
#   BINDIR   holds mkfs.arborfs, fsck.arborfs and arborfs
#   FSTYP    the section's file system type
#   WATCH    seconds a test may run before the kernel's stacks (blocked
#            tasks, every CPU) go to the console, for the host's hang report
set -u
src=$1 config=$2 results=$3 section=$4 exclude=$5 bindir=$6 fstyp=$7 watch=$8
shift 8

# devtmpfs has no /dev/fd: bash's process substitution and tests need it.
[ -e /dev/fd ] || ln -s /proc/self/fd /dev/fd
for i in 0 1 2; do
	n=$(echo stdin stdout stderr | cut -d' ' -f$((i + 1)))
	[ -e /dev/$n ] || ln -s /proc/self/fd/$i /dev/$n
done

# Loopback networking: some tests talk to localhost.
ip link set lo up 2>/dev/null
ip addr add 127.0.0.1/8 dev lo 2>/dev/null

# The users fstests' _require_user and friends look for, in a writable copy
# of the account files (the root file system is the host's, read-only).
mkdir -p /run/etc
for f in passwd group shadow; do
	[ -f /etc/$f ] && cp /etc/$f /run/etc/$f && mount --bind /run/etc/$f /etc/$f
done
add_user() { # NAME ID
	grep -q "^$1:" /etc/passwd && return 0
	echo "$1:x:$2:$2:fstests user:/tmp:/bin/bash" >>/etc/passwd
	echo "$1:x:$2:" >>/etc/group
	[ -f /etc/shadow ] && echo "$1:*:19000:0:99999:7:::" >>/etc/shadow
}
add_user fsgqa 31001
add_user fsgqa2 31002
add_user 123456-fsgqa 31003

# A writable /var/lib (quota and some tools keep state there).
mkdir -p /run/varlib/upper /run/varlib/work
mount -t overlay overlay -o lowerdir=/var/lib,upperdir=/run/varlib/upper,workdir=/run/varlib/work /var/lib

# A writable fstests tree: tests link their output variants into tests/
# (_link_out_file) and check writes state beside itself.
mkdir -p /run/fstests/upper /run/fstests/work
mount -t overlay overlay -o lowerdir="$src",upperdir=/run/fstests/upper,workdir=/run/fstests/work "$src"

mkdir -p /mnt/test /mnt/scratch "$results"
export PATH=$bindir:$PATH
# check mounts TEST_DEV before it reads the section (which then makes the
# file system again with the section's options): it must hold one already.
case $fstyp in
arborfs) mkfs.arborfs --force -q /dev/vda ;;
xfs | btrfs) "mkfs.$fstyp" -f -q /dev/vda >/dev/null ;;
*) "mkfs.$fstyp" -F -q /dev/vda >/dev/null ;;
esac
# There is no udev in the guest: device-mapper must not wait for it, and
# LVM (generic/081) makes its device nodes itself.
export DM_DISABLE_UDEV=1
mkdir -p /run/lvm-etc
cat >/run/lvm-etc/lvm.conf <<'EOF'
activation { udev_sync = 0 udev_rules = 0 }
devices { obtain_device_list_from_udev = 0 }
EOF
export LVM_SYSTEM_DIR=/run/lvm-etc
export HOST_OPTIONS=$config RESULT_BASE=$results TEST_STATUS_LOG=$results/status.log
# A test still running after WATCH seconds is likely hung: its stacks go to
# the console once, while the guest is still alive to print them.
watchdog() {
	local cur='' since=$SECONDS dumped=''
	while sleep 10; do
		local now
		now=$(dmesg 2>/dev/null | sed -n 's/.*run fstests \([^ ]*\) at.*/\1/p' | tail -n1)
		[[ $now != "$cur" ]] && cur=$now since=$SECONDS
		if [[ -n $cur && $cur != "$dumped" ]] && ((SECONDS - since > watch)); then
			dumped=$cur
			echo "guest: $cur running for $watch s: blocked tasks and CPU stacks follow" >/dev/kmsg
			local level _
			read -r level _ </proc/sys/kernel/printk
			dmesg -n 8
			echo w >/proc/sysrq-trigger
			echo l >/proc/sysrq-trigger
			dmesg -n "$level"
		fi
	done
}
((watch > 0)) && watchdog &

cd "$src" || exit 1
./check -s "$section" -E "$exclude" "$@"
