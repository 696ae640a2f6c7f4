#!/usr/bin/env bash
# crash/run.sh: power-cut test of the kernel module. For each kill delay: boot
# the guest with the module on one arborfs image, run workload.py (files and a
# log, each fsync'd and then recorded on the host), kill QEMU (SIGKILL, a power
# cut) DELAY seconds after the workload started, boot again, mount (journal
# replay), run verify.py against the records, unmount and run fsck.arborfs -n.
# The image carries over from one round to the next, so later rounds crash a
# file system that already crashed.
# Fails on any lost fsync'd data, unclean fsck, or kernel complaint.
# usage: crash/run.sh [ROUND...]   (default: 3 10 20 20x4)
# A round is DELAY or DELAYxPROCS: PROCS workers at once (workload.py), so
# the cut lands while fsyncs overlap and share journal writes.
# The delay counts from the workload's start, not the boot, so a slow machine
# still crashes a busy file system.
# Env: ARBORFS, KO, KERNEL as for run-tests.sh.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../env.sh
source "$HERE/../env.sh"
WORK=$ROOT/tests/out/crash
rm -rf "$WORK" && mkdir -p "$WORK/share"
IMG=$WORK/crash.img
"$ARBORFS" format -q --force --fs-size 1G "$IMG"
rounds=("$@")
((${#rounds[@]})) || rounds=(3 10 20 20x4)
bad_log='(BUG|WARNING|INFO): |possible (circular|recursive) locking|Call Trace:|Oops'
rc=0 round=0
for spec in "${rounds[@]}"; do
	round=$((round + 1))
	delay=${spec%x*} procs=1
	[[ $spec == *x* ]] && procs=${spec#*x}
	[[ $delay =~ ^[0-9]+$ && $procs =~ ^[0-9]+$ ]] || { echo "crash: bad round '$spec' (DELAY or DELAYxPROCS)" >&2; exit 2; }
	records=/run/arborfs/records-$round
	status=0
	crash_log=$WORK/crash-$round.log
	"$HERE/../run-guest.sh" --kernel "$KERNEL" --disk "$IMG" --module "$KO" --timeout 900 --quiet \
		--outdir "$WORK/share" --log "$crash_log" -- \
		"mount -t arborfs /dev/vda /mnt && python3 $HERE/workload.py /mnt $records r$round $procs" \
		>"$WORK/crash-$round.out" 2>&1 &
	guest=$!
	# The workload creates its records file first thing; the clock starts then.
	while [[ ! -e $WORK/share/records-$round ]] && kill -0 "$guest" 2>/dev/null; do sleep 0.2; done
	sleep "$delay"
	pkill -KILL -f -- "logfile=$crash_log( |\$)" || true
	wait "$guest" || status=$?
	if ((status != 124)); then
		echo "FAIL crash_round_$round: the workload ended ($status) before the kill at ${delay}s"
		tail -20 "$WORK/crash-$round.out" "$WORK/crash-$round.log"
		rc=1
		break
	fi
	n=$(cat "$WORK/share/records-$round"* | grep -c '^FILE' || true)
	status=0
	"$HERE/../run-guest.sh" --kernel "$KERNEL" --disk "$IMG" --module "$KO" --timeout 300 --quiet \
		--outdir "$WORK/share" --log "$WORK/check-$round.log" -- \
		"mount -t arborfs /dev/vda /mnt && for r in /run/arborfs/records-*; do python3 $HERE/verify.py \$r || exit 1; done && umount /mnt && $ARBORFS fsck -n /dev/vda" \
		>"$WORK/check-$round.out" 2>&1 || status=$?
	if ((status == 0)) && ! grep -qE "$bad_log" "$WORK/crash-$round.log" "$WORK/check-$round.log"; then
		echo "PASS crash_round_$round (killed ${delay}s into the workload of $procs process(es), $n fsync'd files recorded)"
	else
		echo "FAIL crash_round_$round (killed ${delay}s into the workload)"
		grep -v '^\[' "$WORK/check-$round.out" | tail -20
		grep -hE -A15 "$bad_log" "$WORK/check-$round.log" | head -40
		rc=1
	fi
done
exit "$rc"
