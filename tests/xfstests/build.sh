#!/usr/bin/env bash
# build.sh SRC: build fstests from SRC (a checkout or a tarball of one) with
# the patches of xfstests-config/patches/ applied, once, in a cache dir keyed
# by the source's content, the patches and this script. Installs the Debian
# packages fstests' README lists first. Progress goes to stderr; the last
# line of stdout is the built tree.
# Env: ARBORFS_CACHE (default ~/.cache/arborfs), JOBS (default nproc).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PATCHES=("$ROOT"/xfstests-config/patches/*.patch)
CACHE=${ARBORFS_CACHE:-$HOME/.cache/arborfs}
JOBS=${JOBS:-$(nproc)}
KEEP=2

# fstests' README (Debian), the xfs headers it builds against, and what the
# guest runs besides: dmsetup for the dm targets, iproute2 for lo, losetup.
PACKAGES=(
	acl attr automake bc dbench dump e2fsprogs fio gawk gcc git indent libacl1-dev libaio-dev
	libcap-dev libgdbm-dev libtool libtool-bin liburing-dev libuuid1 lvm2 make psmisc python3 quota
	sed uuid-dev uuid-runtime xfsprogs sqlite3 libgdbm-compat-dev xfslibs-dev xfsdump dmsetup
	iproute2 util-linux kmod zstd patch
)

log() { echo "xfstests/build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

install_packages() {
	local p missing=()
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
	done
	((${#missing[@]})) || return 0
	[[ $(id -u) == 0 ]] || die "need root to install: ${missing[*]}"
	log "installing ${missing[*]}"
	[[ -n $(ls /var/lib/apt/lists/*Packages* 2>/dev/null) ]] || apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 \
		"${missing[@]}" >/tmp/arborfs-xfstests-apt.log 2>&1 ||
		{ tail -n 30 /tmp/arborfs-xfstests-apt.log >&2; die "apt-get install failed"; }
}

# A digest of SRC's content: the file itself, or every file of a directory
# (names and bytes, in a stable order; .git and results are left out).
source_key() {
	local src=$1
	if [[ -f $src ]]; then
		sha256sum <"$src"
	else
		(cd "$src" && find . -path ./.git -prune -o -path ./results -prune -o -type f -print0 |
			LC_ALL=C sort -z | xargs -0 sha256sum)
	fi | sha256sum | cut -c1-16
}

main() {
	(($# == 1)) || die "usage: build.sh FSTESTS_DIR_OR_TARBALL"
	local src=$1
	[[ -e $src ]] || die "$src: no such file or directory"
	src=$(realpath "$src")
	install_packages
	local key
	key=$({ source_key "$src"; cat "${PATCHES[@]}" "${BASH_SOURCE[0]}"; } | sha256sum | cut -c1-12)
	local dir=$CACHE/xfstests-$key
	if [[ -f $dir/.arborfs-built ]]; then
		echo "$dir"
		return 0
	fi
	mkdir -p "$CACHE"
	rm -rf "$dir" && mkdir -p "$dir/unpack"
	log "unpacking $src"
	if [[ -f $src ]]; then
		tar -xf "$src" -C "$dir/unpack"
	else
		tar -C "$src" --exclude=./.git --exclude=./results -cf - . | tar -xf - -C "$dir/unpack"
	fi
	# A tarball of "xfstests/..." has one top directory: that is the tree.
	local top=$dir/unpack
	if [[ ! -f $top/check ]]; then
		top=$(dirname "$(find "$dir/unpack" -maxdepth 2 -name check -type f | head -n1)")
		[[ -f $top/check ]] || die "$src holds no fstests tree (no ./check)"
	fi
	# Built where it stays: libtool wrappers remember their directory.
	mv "$top" "$dir/src"
	rm -rf "$dir/unpack"
	local p
	for p in "${PATCHES[@]}"; do
		log "applying ${p##*/}"
		patch -d "$dir/src" -p1 -s <"$p" || die "${p##*/} does not apply to $src"
	done
	log "building with -j$JOBS (log: $dir/build.log)"
	local t0=$SECONDS
	if ! make -C "$dir/src" -j"$JOBS" >"$dir/build.log" 2>&1; then
		tail -n 30 "$dir/build.log" >&2
		die "fstests build failed"
	fi
	touch "$dir/.arborfs-built"
	log "built in $((SECONDS - t0)) s"
	ls -1dt "$CACHE"/xfstests-*/ 2>/dev/null | tail -n +$((KEEP + 1)) | while read -r d; do
		[[ ${d%/} == "$dir" ]] || rm -rf "${d%/}"
	done
	echo "$dir"
}

main "$@"
