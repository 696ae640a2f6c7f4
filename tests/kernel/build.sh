#!/usr/bin/env bash
# build.sh: build the arborfs test kernel (Linux 6.12 from Debian's linux-source,
# tinyconfig + tests/kernel/config.fragment, Rust enabled, LLVM=1) in a cache dir
# outside the repo, ready for out-of-tree modules:
#   make -C "$KDIR" M=/path/to/module LLVM=1 RUSTC=/usr/bin/rustc modules
# The last line of stdout is KDIR; the bzImage is $KDIR/arch/x86/boot/bzImage.
# A finished build (same key) is reused at once. Progress goes to stderr, the
# full make output to $KDIR/.arborfs-build.log.
# Env: ARBORFS_CACHE (default ~/.cache/arborfs), JOBS (default nproc),
#      ARBORFS_KASAN=1 to add config-kasan.fragment (a separate cache dir).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FRAGMENTS=("$HERE/config.fragment")
[[ ${ARBORFS_KASAN:-0} == 1 ]] && FRAGMENTS+=("$HERE/config-kasan.fragment")
TARBALL=/usr/src/linux-source-6.12.tar.xz
RUSTC=/usr/bin/rustc
CACHE=${ARBORFS_CACHE:-$HOME/.cache/arborfs}
JOBS=${JOBS:-$(nproc)}
KEEP=2   # kernel-* cache dirs kept

log() { echo "build.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

cache_key() {
	{
		dpkg-query -W -f='${Version}\n' linux-source-6.12
		cat "${FRAGMENTS[@]}" "${BASH_SOURCE[0]}"
		"$RUSTC" --version
	} | sha256sum | cut -c1-12
}

find_bindgen() {
	local b
	for b in "$(command -v bindgen || true)" "${CARGO_HOME:-$HOME/.cargo}/bin/bindgen"; do
		[[ -n $b && -x $b ]] && { echo "$b"; return 0; }
	done
	die "bindgen not found: run tests/kernel/install-deps.sh"
}

kmake() { make -C "$KDIR" LLVM=1 RUSTC="$RUSTC" BINDGEN="$BINDGEN" "$@"; }

# Fail if an option the fragment asks for did not land in the final .config.
check_config() {
	local line opt bad=()
	while IFS= read -r line; do
		if [[ $line =~ ^(CONFIG_[A-Za-z0-9_]+)=(.*)$ ]]; then
			grep -qxF "$line" "$KDIR/.config" || bad+=("$line")
		elif [[ $line =~ ^#\ (CONFIG_[A-Za-z0-9_]+)\ is\ not\ set$ ]]; then
			opt=${BASH_REMATCH[1]}
			grep -q "^$opt=" "$KDIR/.config" && bad+=("$line")
		fi
	done < <(cat "${FRAGMENTS[@]}")
	((${#bad[@]} == 0)) || die "options missing from $KDIR/.config: ${bad[*]}"
}

configure() {
	log "configuring (tinyconfig + ${FRAGMENTS[*]##*/})"
	kmake -s tinyconfig >>"$BUILD_LOG" 2>&1
	(cd "$KDIR" && scripts/kconfig/merge_config.sh -m .config "${FRAGMENTS[@]}") >>"$BUILD_LOG" 2>&1
	kmake -s olddefconfig >>"$BUILD_LOG" 2>&1
	check_config
}

prune_cache() {
	local d
	touch "$KDIR"
	ls -1dt "$CACHE"/kernel-*/ 2>/dev/null | tail -n +$((KEEP + 1)) | while read -r d; do
		[[ ${d%/} == "$KDIR" ]] && continue
		log "removing old cache dir ${d%/}"
		rm -rf "${d%/}"
	done
}

main() {
	[[ -f $TARBALL && -x $RUSTC ]] || die "missing toolchain: run tests/kernel/install-deps.sh"
	KDIR=$CACHE/kernel-$(cache_key)
	local stamp=$KDIR/.arborfs-built
	if [[ -f $stamp ]]; then
		echo "$KDIR"
		return 0
	fi
	BINDGEN=$(find_bindgen)
	BUILD_LOG=$KDIR/.arborfs-build.log
	mkdir -p "$KDIR"
	exec 9>"$KDIR/.arborfs-lock"
	flock 9
	if [[ -f $stamp ]]; then echo "$KDIR"; return 0; fi   # built while we waited

	local t0=$SECONDS
	if [[ ! -f $KDIR/.arborfs-unpacked ]]; then
		log "unpacking $TARBALL into $KDIR"
		tar -C "$KDIR" --strip-components=1 -xf "$TARBALL"
		touch "$KDIR/.arborfs-unpacked"
	fi
	: >"$BUILD_LOG"
	kmake -s rustavailable >>"$BUILD_LOG" 2>&1 || { tail -n 20 "$BUILD_LOG" >&2; die "Rust toolchain not usable"; }
	configure
	log "building bzImage and modules with -j$JOBS (log: $BUILD_LOG)"
	if ! kmake -j"$JOBS" bzImage modules modules_prepare >>"$BUILD_LOG" 2>&1; then
		grep -E -m 20 'error|Error' "$BUILD_LOG" >&2 || tail -n 30 "$BUILD_LOG" >&2
		die "kernel build failed (log: $BUILD_LOG)"
	fi
	[[ -f $KDIR/arch/x86/boot/bzImage && -f $KDIR/rust/kernel.o ]] || die "build left no bzImage or rust/kernel.o"
	touch "$stamp"
	log "built in $((SECONDS - t0)) s"
	prune_cache
	echo "$KDIR"
}

main "$@"
