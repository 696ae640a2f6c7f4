#!/usr/bin/env bash
# install-deps.sh: install what the arborfs test kernel and QEMU guest tests need
# (Debian 12): linux-source-6.12, rustc-web 1.96 + its library sources, clang/LLVM,
# kernel build tools, QEMU, busybox, guest-side fs tools, and bindgen-cli >= the
# kernel's minimum (cargo install). Idempotent and quiet; run as root.
set -euo pipefail

BINDGEN_MIN=0.65.1   # linux 6.12 scripts/min-tool-version.sh

PACKAGES=(
	linux-source-6.12 rustc-web rust-web-src
	libclang-dev clang lld llvm
	make flex bison bc libelf-dev libssl-dev cpio xz-utils kmod
	busybox-static qemu-system-x86 qemu-utils
	fio stress-ng fsmark attr acl xfsprogs e2fsprogs btrfs-progs
)

die() { echo "install-deps: $*" >&2; exit 1; }

missing_packages() {
	local p
	for p in "${PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
			|| echo "$p"
	done
}

install_packages() {
	local missing
	mapfile -t missing < <(missing_packages)
	((${#missing[@]})) || return 0
	[[ $(id -u) == 0 ]] || die "need root to install: ${missing[*]}"
	# Refresh the lists once if a missing package has no install candidate
	# yet (each one: stale lists may know rustc-web but not linux-source-6.12).
	local p stale=
	[[ -n $(ls /var/lib/apt/lists/*Packages* 2>/dev/null) ]] || stale=1
	for p in "${missing[@]}"; do
		apt-cache policy "$p" 2>/dev/null | grep -q 'Candidate: [0-9]' || stale=1
	done
	if [[ -n $stale ]]; then
		apt-get update -qq || die "apt-get update failed"
	fi
	# A newer qemu-utils (backport) Breaks Debian 12's qemu-system-common: take
	# both from bookworm so that qemu-img stays installed.
	local extra=()
	if [[ " ${missing[*]} " == *" qemu-system-x86 "* ]]; then
		extra=(--allow-downgrades qemu-utils/bookworm)
	fi
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		-o Dpkg::Use-Pty=0 "${extra[@]}" "${missing[@]}" >/tmp/arborfs-apt.log 2>&1 \
		|| { tail -n 30 /tmp/arborfs-apt.log >&2; die "apt-get install failed (log: /tmp/arborfs-apt.log)"; }
	mapfile -t missing < <(missing_packages)
	((${#missing[@]} == 0)) || die "still missing after install: ${missing[*]}"
}

version_ge() { [[ $(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1) == "$2" ]]; }

bindgen_version() {
	local b
	for b in bindgen "${CARGO_HOME:-$HOME/.cargo}/bin/bindgen"; do
		command -v "$b" >/dev/null 2>&1 || continue
		"$b" --version 2>/dev/null | awk '{print $2; exit}'
		return 0
	done
}

install_bindgen() {
	local v
	v=$(bindgen_version || true)
	if [[ -n $v ]] && version_ge "$v" "$BINDGEN_MIN"; then
		return 0
	fi
	command -v cargo >/dev/null || die "cargo not found; cannot install bindgen-cli"
	echo "install-deps: installing bindgen-cli (found '${v:-none}', need >= $BINDGEN_MIN)" >&2
	cargo install --quiet --locked bindgen-cli >/tmp/arborfs-bindgen.log 2>&1 \
		|| { tail -n 30 /tmp/arborfs-bindgen.log >&2; die "cargo install bindgen-cli failed"; }
	v=$(bindgen_version || true)
	[[ -n $v ]] && version_ge "$v" "$BINDGEN_MIN" || die "bindgen still missing or too old: '${v:-none}'"
}

install_packages
install_bindgen
[[ -x /usr/bin/rustc && -d /usr/lib/rustlib/src/rust/library ]] || die "rustc-web / rust-web-src incomplete"
[[ -f /usr/src/linux-source-6.12.tar.xz ]] || die "/usr/src/linux-source-6.12.tar.xz missing"
