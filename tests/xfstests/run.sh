#!/usr/bin/env bash
# run.sh: run fstests against arborfs (or another FSTYP of a config section)
# in the QEMU test guest: build fstests from $XFSTESTS (a checkout or a
# tarball; tests/xfstests/build.sh caches the build), boot the test kernel
# with three sparse disks (TEST, SCRATCH, LOGWRITES) and the module, and run
# ./check there with xfstests-config/local.config and arborfs.exclude.
#
# A test that makes no progress for --timeout seconds is recorded as hung:
# the guest is killed and a fresh one goes on with the tests not yet run.
# Results (check's results/ tree with every failure's .out.bad, .full and
# .dmesg, the console logs, a summary) land in tests/out/xfstests/.
#
# usage: run.sh [--tests "generic/001 generic/013"] [--group quick]
#               [--section arborfs] [--timeout SECS] [--list FILE]
#   --list FILE  the tests named in FILE (one per line, # comments)
#   --all-pass   fail unless every test passed (a notrun fails too: the CI list)
#   --print      print the selected tests, one per line, and run nothing
#                (with tests/xfstests/ledger.sh: what is left to run)
# Env: XFSTESTS (required), ARBORFS, KO, KERNEL as for tests/qemu (env.sh),
#      XFSTESTS_DISK_SIZE (default 8G), XFSTESTS_OUT (default tests/out/xfstests),
#      XFSTESTS_SMP (guest CPUs, default 2; 1 lets two runs share two cores).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../qemu/env.sh
source "$HERE/../qemu/env.sh"
CONFIG=$ROOT/xfstests-config/local.config
EXCLUDE=$ROOT/xfstests-config/arborfs.exclude
OUT=${XFSTESTS_OUT:-$ROOT/tests/out/xfstests}

die() { echo "xfstests: $*" >&2; exit 2; }

TESTS=() GROUPS_WANTED=() SECTION=arborfs TIMEOUT=900 ALL_PASS=0 PRINT=0
while (($#)); do
	case $1 in
	--tests) read -r -a t <<<"$2"; TESTS+=("${t[@]}"); shift 2 ;;
	--list) mapfile -t t < <(sed 's/#.*//' "$2" | awk 'NF {print $1}'); TESTS+=("${t[@]}"); shift 2 ;;
	--group) read -r -a t <<<"$2"; GROUPS_WANTED+=("${t[@]}"); shift 2 ;;
	--section) SECTION=$2; shift 2 ;;
	--all-pass) ALL_PASS=1; shift ;;
	--print) PRINT=1; shift ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) die "unknown option $1 (see --help)" ;;
	esac
done
[[ -n ${XFSTESTS:-} ]] || die "set XFSTESTS to an fstests checkout or tarball (make xfstests XFSTESTS=...)"
((${#TESTS[@]} + ${#GROUPS_WANTED[@]})) || die "give --tests, --list or --group"
grep -q "^\[$SECTION\]" "$CONFIG" || die "no section [$SECTION] in $CONFIG"

FSTESTS=$("$HERE/build.sh" "$XFSTESTS" | tail -n1)/src
[[ -x $FSTESTS/check ]] || die "no fstests build at $FSTESTS"

# The section's FSTYP: its own, or the last one set before it (options
# carry over from section to section).
fstyp=$(awk -v s="[$SECTION]" '/^FSTYP=/ {f = substr($0, 7)} $0 == s {found = 1} found && /^\[/ && $0 != s {exit} END {print f}' "$CONFIG")
# Expand groups from the group lists the build made.
if ((${#GROUPS_WANTED[@]})); then
	for d in generic shared "${fstyp:-arborfs}"; do
		[[ -f $FSTESTS/tests/$d/group.list ]] || continue
		while read -r num groups; do
			for g in "${GROUPS_WANTED[@]}"; do
				if [[ " $groups " == *" $g "* ]]; then TESTS+=("$d/$num"); break; fi
			done
		done < <(sed 's/#.*//' "$FSTESTS/tests/$d/group.list" | awk 'NF')
	done
fi
mapfile -t TESTS < <(printf '%s\n' "${TESTS[@]}" | sort -u)
((${#TESTS[@]})) || die "no tests selected"
if ((PRINT)); then
	printf '%s\n' "${TESTS[@]}"
	exit 0
fi

rm -rf "$OUT" && mkdir -p "$OUT/share" "$OUT/bin" "$OUT/disks"
# The run's config: the section alone, with what it inherits from the
# sections before it written out (check reads the first section before it
# looks at -s, so the one to run must come first).
{
	echo "[$SECTION]"
	awk -v s="[$SECTION]" '$0 == s {found = 1; next} found && /^\[/ {exit} !/^\[/ && !/^#/ && NF' "$CONFIG"
} >"$OUT/share/local.config"
CONFIG=$OUT/share/local.config
for n in arborfs mkfs.arborfs fsck.arborfs; do ln -s "$ARBORFS" "$OUT/bin/$n"; done
RESULTS=/run/arborfs/results
STATUS=$OUT/share/results/status.log
size=${XFSTESTS_DISK_SIZE:-8G}

echo "xfstests: ${#TESTS[@]} tests, section $SECTION, $TIMEOUT s per test without progress"
declare -A done_status=()
hung=()
boot=0 t_start=$SECONDS
remaining=("${TESTS[@]}")
while ((${#remaining[@]})); do
	boot=$((boot + 1))
	# Fresh disks for every boot: a hung test may have left anything behind.
	for d in test scratch logwrites; do
		rm -f "$OUT/disks/$d.img" && truncate -s "$size" "$OUT/disks/$d.img"
	done
	log=$OUT/console-$boot.log
	printf '%s\n' "${remaining[@]}" >"$OUT/share/tests-$boot"
	setsid "$ROOT/tests/qemu/run-guest.sh" --kernel "$KERNEL" --module "$KO" --mem 3G --timeout 86400 \
		--smp "${XFSTESTS_SMP:-2}" \
		--disk "$OUT/disks/test.img" --disk "$OUT/disks/scratch.img" --disk "$OUT/disks/logwrites.img" \
		--outdir "$OUT/share" --log "$log" --quiet -- \
		bash "$HERE/guest.sh" "$FSTESTS" "$CONFIG" "$RESULTS" "$SECTION" "$EXCLUDE" "$OUT/bin" "$fstyp" \
		"$((TIMEOUT > 120 ? TIMEOUT - 60 : TIMEOUT / 2))" \
		"${remaining[@]}" >"$OUT/guest-$boot.out" 2>&1 &
	pid=$!
	current='' since=$SECONDS stuck=''
	while kill -0 "$pid" 2>/dev/null; do
		sleep 5
		# check prints a test's name when it starts.
		now=$(tr -d '\r' <"$log" 2>/dev/null | grep -oE '^(generic|shared|arborfs|ext4)/[0-9]+' | tail -n1 || true)
		if [[ $now != "$current" ]]; then
			current=$now since=$SECONDS
		elif [[ -n $current ]] && ((SECONDS - since > TIMEOUT)); then
			stuck=$current
			echo "xfstests: $stuck made no progress for $TIMEOUT s: killing the guest"
			kill -- -"$pid" 2>/dev/null || true
			break
		fi
	done
	wait "$pid" 2>/dev/null || true
	progress=0
	if [[ -f $STATUS ]]; then
		while read -r _sect t st _secs; do
			[[ -n ${done_status[$t]:-} ]] && continue
			done_status[$t]=$st
			progress=1
		done <"$STATUS"
	fi
	if [[ -n $stuck && -z ${done_status[$stuck]:-} ]]; then
		done_status[$stuck]=hung
		hung+=("$stuck")
		progress=1
	fi
	next=()
	for t in "${remaining[@]}"; do [[ -n ${done_status[$t]:-} ]] || next+=("$t"); done
	remaining=("${next[@]}")
	if ((${#remaining[@]} && !progress)); then
		echo "xfstests: boot $boot finished no test; giving up (see $log, $OUT/guest-$boot.out)"
		tail -n 20 "$OUT/guest-$boot.out"
		break
	fi
done

# Summary: per test, its status and (not run) reason.
rdir=$OUT/share/results/$SECTION
{
	for t in "${TESTS[@]}"; do
		st=${done_status[$t]:-missing}
		why=''
		[[ $st == notrun && -f $rdir/$t.notrun ]] && why=$(head -n1 "$rdir/$t.notrun")
		echo "$t $st${why:+ $why}"
	done
} >"$OUT/summary.txt"
# The status is the second field: a notrun reason may end in "missing".
count() { awk -v s="$1" '$2 == s' "$OUT/summary.txt" | wc -l; }
pass=$(count pass) fail=$(count fail) notrun=$(count notrun) expunged=$(count expunge)
missing=$(count missing)
extra=''
((missing)) && extra=", $missing never reached"
echo "xfstests: $pass passed, $((fail + ${#hung[@]})) failed, $notrun notrun ($expunged excluded, ${#hung[@]} hung$extra) in $((SECONDS - t_start)) s, $boot boot(s)"
if ((fail + ${#hung[@]})); then
	echo "xfstests: failed: $(awk '$2 == "fail" || $2 == "hung" {printf "%s(%s) ", $1, $2}' "$OUT/summary.txt")"
fi
echo "xfstests: results in $OUT (summary.txt, share/results/$SECTION)"
if ((ALL_PASS && notrun + expunged)); then
	echo "xfstests: every test of this list must pass; not run: $(awk '$2 != "pass" {printf "%s ", $1}' "$OUT/summary.txt")"
	exit 1
fi
((fail + ${#hung[@]} + missing == 0))
