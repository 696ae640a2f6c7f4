#!/usr/bin/env bash
# Builds the demo tree used by `make run`: text, a sparse file, a hard link,
# a symlink, an xattr, an empty directory. Usage: make-sample.sh DIR
set -euo pipefail
d=$1
rm -rf "$d"
mkdir -p "$d/docs" "$d/empty"
cp "$(dirname "$0")/../../README.md" "$d/docs/README.md"
printf 'hello from arborfs\n' > "$d/hello.txt"
ln "$d/hello.txt" "$d/docs/hello-hardlink.txt"
ln -s ../hello.txt "$d/docs/hello-symlink"
truncate -s 64M "$d/sparse.bin"
printf 'tail' >> "$d/sparse.bin"
setfattr -n user.comment -v "set by make-sample.sh" "$d/hello.txt" 2>/dev/null || true
