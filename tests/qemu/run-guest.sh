#!/usr/bin/env bash
# run-guest.sh: boot the arborfs test kernel under QEMU (TCG) with the host's root
# file system as the guest's root (read-only, virtio-9p), optionally load modules
# and attach raw disks, run one command in the guest and exit with its status.
#
# usage: run-guest.sh [--kernel BZIMAGE] [--disk IMG]... [--module KO]...
#                     [--timeout SEC] [--log FILE] [--outdir DIR] [--quiet]
#                     [--mem SIZE] [--smp N] [--prealloc] [--append ARGS] [-- CMD...]
#   --kernel   bzImage (default: the one tests/kernel/build.sh builds)
#   --disk     raw image, virtio-blk: first is /dev/vda, then /dev/vdb, ...
#   --module   .ko loaded with insmod before CMD (in the order given)
#   --timeout  kill QEMU after SEC seconds and fail (default 900 with CMD, none without)
#   --log      console log file (default: a new file under ${TMPDIR:-/tmp}); path printed
#   --outdir   host dir shared read-write as guest /run/arborfs ($ARBORFS_OUT in the
#              guest): CMD can leave result files there (default: a temp dir, removed)
#   --interactive  run CMD with the serial console as its terminal (a shell
#              started by CMD stays usable); default: CMD's stdin is /dev/null
#   --prealloc allocate all guest RAM on the host before booting (QEMU
#              -mem-prealloc); without it the first touch of each guest page
#              costs a host page fault, so whatever first fills the page
#              cache runs slower (benchmarks)
#   --quiet    do not echo the console while it runs; afterwards print only
#              what CMD printed (kernel messages interleaved may show up)
#   CMD        one argument is run as a bash script line, several as an argv;
#              it runs in the host's current directory (read-only in the guest).
#              Without CMD: an interactive shell on the serial console.
# Exit status: CMD's status; 124 on timeout, 125 on kernel panic, 126 when the
# guest stopped without reporting a status.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INIT=$HERE/guest-init.sh
KERNEL= LOG= OUTDIR= TIMEOUT= QUIET=0 INTERACTIVE=0 MEM=2G SMP=2 PREALLOC=0 APPEND=
DISKS=() MODULES=() CMD=()

die() { echo "run-guest.sh: $*" >&2; exit 2; }

parse_args() {
	while (($#)); do
		case $1 in
		--kernel) KERNEL=$2; shift 2 ;;
		--disk) DISKS+=("$(realpath -e "$2")") || die "no disk $2"; shift 2 ;;
		--module) MODULES+=("$(realpath -e "$2")") || die "no module $2"; shift 2 ;;
		--timeout) TIMEOUT=$2; shift 2 ;;
		--log) LOG=$2; shift 2 ;;
		--outdir) OUTDIR=$2; shift 2 ;;
		--quiet) QUIET=1; shift ;;
		--interactive) INTERACTIVE=1; shift ;;
		--mem) MEM=$2; shift 2 ;;
		--smp) SMP=$2; shift 2 ;;
		--prealloc) PREALLOC=1; shift ;;
		--append) APPEND=$2; shift 2 ;;
		--) shift; CMD=("$@"); break ;;
		-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
		*) die "unknown option $1 (see --help)" ;;
		esac
	done
	if [[ -z $KERNEL ]]; then
		KERNEL=$("$HERE/../kernel/build.sh" | tail -n1)/arch/x86/boot/bzImage
	fi
	[[ -f $KERNEL ]] || die "no kernel $KERNEL"
	[[ -x $INIT ]] || die "$INIT is not executable"
	[[ $INIT != *[[:space:]]* ]] || die "the repo path must not contain spaces (kernel command line)"
	if [[ -z $TIMEOUT ]]; then TIMEOUT=$(( ${#CMD[@]} ? 900 : 0 )); fi
}

# Put the command, modules and settings where guest-init.sh finds them.
prepare_share() {
	if [[ -n $OUTDIR ]]; then
		mkdir -p "$OUTDIR"
		OUTDIR=$(realpath "$OUTDIR")
	else
		OUTDIR=$(mktemp -d "${TMPDIR:-/tmp}/arborfs-guest.XXXXXX")
		trap 'rm -rf "$OUTDIR"' EXIT
	fi
	local g=$OUTDIR/.guest i=0 m
	rm -rf "$g" && mkdir -p "$g/modules"
	NONCE=$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')
	printf 'NONCE=%q\nARBORFS_CWD=%q\nARBORFS_ROOT=%q\n' "$NONCE" "$PWD" "$(cd "$HERE/../.." && pwd)" >"$g/env"
	for m in "${MODULES[@]}"; do
		i=$((i + 1))
		cp "$m" "$g/modules/$i-$(basename "$m")"
		echo "/run/arborfs/.guest/modules/$i-$(basename "$m")" >>"$g/modules.list"
	done
	if ((${#CMD[@]} == 1)); then
		printf '%s\n' "${CMD[0]}" >"$g/cmd"
	elif ((${#CMD[@]} > 1)); then
		printf '%q ' "${CMD[@]}" >"$g/cmd" && echo >>"$g/cmd"
	fi
	if ((INTERACTIVE)); then
		touch "$g/interactive"
	fi
	if [[ -z $LOG ]]; then
		LOG=$(mktemp "${TMPDIR:-/tmp}/arborfs-console.XXXXXX.log")
	fi
	: >"$LOG"
}

# RCU's stall checks at 60 s instead of 21: under TCG (KASAN most of all) on
# a busy two-core host the grace-period kthread can wait that long to run
# (a PROVE_RCU warning 45 s into a KASAN boot, before any module), and a
# real stall still shows.
run_qemu() {
	local args=(
		-accel tcg -m "$MEM" -smp "$SMP" -nographic -no-reboot
		-kernel "$KERNEL"
		-append "console=ttyS0 root=hostroot rootfstype=9p rootflags=trans=virtio,version=9p2000.L,msize=262144,cache=loose ro init=$INIT panic=-1 oops=panic loglevel=6 tsc=reliable rcupdate.rcu_cpu_stall_timeout=60 $APPEND"
		-virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap"
		-virtfs "local,path=${OUTDIR//,/,,},mount_tag=arborfs,security_model=none,multidevs=remap"
		-chardev "stdio,id=con,mux=on,signal=off,logfile=${LOG//,/,,}"
		-serial chardev:con -mon chardev=con,mode=readline
		-nic none
	)
	((PREALLOC)) && args+=(-mem-prealloc)
	local d
	for d in "${DISKS[@]}"; do
		args+=(-drive "file=${d//,/,,},format=raw,if=virtio,cache=unsafe")
	done
	local run=(qemu-system-x86_64 "${args[@]}")
	((TIMEOUT > 0)) && run=(timeout --foreground -k 5 "$TIMEOUT" "${run[@]}")
	if ((${#CMD[@]} == 0 || INTERACTIVE)); then
		"${run[@]}"
	elif ((QUIET)); then
		"${run[@]}" </dev/null >/dev/null
	else
		"${run[@]}" </dev/null
	fi
}

# Turn the console log and QEMU's status into the script's exit status.
guest_status() {
	local qrc=$1 rc
	rc=$(tr -d '\r' <"$LOG" | sed -n "s/.*ARBORFS-EXIT-$NONCE \([0-9][0-9]*\).*$/\1/p" | tail -n1)
	if ((qrc == 124 || qrc == 137)) && [[ -z $rc ]]; then
		echo "run-guest.sh: timeout after ${TIMEOUT}s" >&2; return 124
	fi
	if grep -q 'Kernel panic - not syncing' "$LOG"; then
		echo "run-guest.sh: kernel panic (see $LOG)" >&2; return 125
	fi
	[[ -n $rc ]] || { echo "run-guest.sh: guest stopped without a status (qemu $qrc)" >&2; return 126; }
	return "$rc"
}

main() {
	parse_args "$@"
	prepare_share
	local t0 qrc=0 rc=0
	t0=${EPOCHREALTIME/./}
	run_qemu || qrc=$?
	if ((QUIET)); then
		tr -d '\r' <"$LOG" | sed -n "/^ARBORFS-START-$NONCE\$/,/ARBORFS-EXIT-$NONCE /p" | sed '1d;$d' | sed '${/^$/d}'
	fi
	guest_status "$qrc" || rc=$?
	if grep -qE '(BUG|WARNING|INFO): |possible (circular|recursive) locking|Call Trace:' "$LOG"; then
		echo "run-guest.sh: kernel reported problems, see $LOG" >&2
	fi
	local ms=$(( (${EPOCHREALTIME/./} - t0) / 1000 ))
	printf 'run-guest.sh: status %d after %d.%03ds; console log: %s\n' "$rc" \
		$((ms / 1000)) $((ms % 1000)) "$LOG" >&2
	return "$rc"
}

main "$@"
