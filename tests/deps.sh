#!/usr/bin/env bash
# Installs what building and testing the userspace parts needs on a fresh
# Debian 12 machine: a C compiler (zstd-sys), attr tools, and a Rust toolchain
# if none is on PATH. Idempotent and quiet.
set -euo pipefail

need_apt=()
command -v cc >/dev/null || need_apt+=(build-essential)
command -v setfattr >/dev/null || need_apt+=(attr)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
    echo "deps: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        echo "deps: use $HOME/.cargo/bin (add it to PATH)" >&2
    else
        echo "deps: installing Debian's cargo" >&2
        apt-get install -y -qq cargo rustc >/dev/null
    fi
fi
