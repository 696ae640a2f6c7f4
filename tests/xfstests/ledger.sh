#!/usr/bin/env bash
# ledger.sh: the fstests results ledger, xfstests-config/results.txt: one
# line per test and file system type with the latest result, the date, the
# commit it ran on and, for a notrun, check's reason. Runs on TCG take
# hours, so results are kept in the tree and a later run goes on from them.
#
# usage: ledger.sh add FSTYP SUMMARY   merge a run's summary.txt (run.sh)
#        ledger.sh todo FSTYP LIST     the tests of LIST with no result for FSTYP
#        ledger.sh table LIST          per-FSTYP counts over LIST, and the
#                                      notrun reasons counted
# Env: LEDGER (default xfstests-config/results.txt), COMMIT (default HEAD's).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LEDGER=${LEDGER:-$ROOT/xfstests-config/results.txt}

die() { echo "ledger: $*" >&2; exit 2; }
# The tests of a list file (one per line, # comments).
list_tests() { sed 's/#.*//' "$1" | awk 'NF {print $1}' | sort -u; }

header='# fstests results (tests/xfstests/ledger.sh): test fstyp status date commit [notrun reason]'

add() {
	local fstyp=$1 summary=$2 commit date
	[[ -f $summary ]] || die "$summary: no such file"
	commit=${COMMIT:-$(git -C "$ROOT" rev-parse --short=7 HEAD)}
	date=$(date -u +%F)
	touch "$LEDGER"
	# A hung or never-reached test has no result worth keeping.
	awk -v f="$fstyp" -v c="$commit" -v d="$date" -v h="$header" '
		FNR == NR {
			if ($2 != "pass" && $2 != "fail" && $2 != "notrun") next
			why = ""
			if (NF > 2) { why = $0; sub(/^[^ ]+ [^ ]+ /, "", why) }
			new[$1] = $1 " " f " " $2 " " d " " c (why == "" ? "" : " " why)
			next
		}
		/^#/ || NF == 0 { next }
		!(($2 == f) && ($1 in new)) { print }
		END { for (t in new) print new[t] }
	' "$summary" "$LEDGER" | LC_ALL=C sort -k1,1 -k2,2 | { echo "$header"; cat; } >"$LEDGER.new"
	mv "$LEDGER.new" "$LEDGER"
	echo "ledger: $(awk -v f="$fstyp" '$2 == f' "$LEDGER" | wc -l) $fstyp results in $LEDGER"
}

todo() {
	local fstyp=$1 list=$2
	[[ -f $list ]] || die "$list: no such file"
	list_tests "$list" | LC_ALL=C sort >"${TMPDIR:-/tmp}/ledger-list.$$"
	awk -v f="$fstyp" '$2 == f {print $1}' "$LEDGER" 2>/dev/null | LC_ALL=C sort -u |
		LC_ALL=C comm -23 "${TMPDIR:-/tmp}/ledger-list.$$" -
	rm -f "${TMPDIR:-/tmp}/ledger-list.$$"
}

table() {
	local list=$1
	[[ -f $list ]] || die "$list: no such file"
	list_tests "$list" | awk -v n="$(list_tests "$list" | wc -l)" '
		FNR == NR { want[$1] = 1; next }
		/^#/ || !($1 in want) { next }
		{
			seen[$2]++; st[$2 " " $3]++; fs[$2] = 1
			if ($3 == "notrun") {
				why = $0; sub(/^([^ ]+ ){5}/, "", why); reason[$2 "\t" why]++
			} else if ($3 == "fail") failed[$2] = failed[$2] " " $1
		}
		END {
			# Sorted afterwards: by fstyp, its summary first, then reasons by count.
			for (f in fs) {
				printf "%s\t0\t%s: %d of %d tests have a result: %d passed, %d failed, %d notrun\n",
					f, f, seen[f], n, st[f " pass"], st[f " fail"], st[f " notrun"]
				if (failed[f] != "") printf "%s\t1\t  failed:%s\n", f, failed[f]
			}
			for (k in reason) {
				split(k, p, "\t")
				printf "%s\t2\t  %4d notrun: %s\n", p[1], reason[k], p[2]
			}
		}
	' - "$LEDGER" | LC_ALL=C sort -t$'\t' -k1,1 -k2,2n -k3,3r | cut -f3-
}

case ${1:-} in
add) (($# == 3)) || die "usage: ledger.sh add FSTYP SUMMARY"; add "$2" "$3" ;;
todo) (($# == 3)) || die "usage: ledger.sh todo FSTYP LIST"; todo "$2" "$3" ;;
table) (($# == 2)) || die "usage: ledger.sh table LIST"; table "$2" ;;
*) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; [[ ${1:-} == -h || ${1:-} == --help ]] ;;
esac
