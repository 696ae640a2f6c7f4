#!/usr/bin/env bash
# make-tree.sh DIR: a tree with every kind of file the kernel must serve:
# random and compressible data, a large sparse file, long and non-ASCII
# names, hard links, symlinks, fifos, sockets, device nodes, empty and nested
# directories, owners, modes (setuid, sticky), nanosecond times, xattrs.
set -euo pipefail
d=$1
rm -rf "$d"
mkdir -p "$d/empty" "$d/a/b/c/d" "$d/sticky"
head -c 300000 /dev/urandom > "$d/random.bin"
for i in $(seq 1 2000); do echo "line $i of a compressible file"; done > "$d/text.txt"
python3 -c "import sys; sys.stdout.write('zstd and lz4 like repetition\\n' * 70000)" > "$d/a/repetitive"
truncate -s 100M "$d/sparse"
printf 'middle' | dd of="$d/sparse" bs=1 seek=$((50 << 20)) conv=notrunc status=none
printf 'end' >> "$d/sparse"
printf 'x' > "$d/$(printf 'n%.0s' $(seq 1 255))"
printf 'unicode\n' > "$d/zażółć gęślą jaźń ☃"
echo hello > "$d/a/b/c/d/deep"
ln "$d/text.txt" "$d/a/hardlink"
ln "$d/text.txt" "$d/a/b/hardlink2"
ln -s ../text.txt "$d/a/symlink"
ln -s "$(printf '/long/target%.0s' $(seq 1 100))" "$d/longlink"
mkfifo "$d/fifo"
python3 -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])' "$d/socket"
mknod "$d/chardev" c 1 3
mknod "$d/blockdev" b 259 70000
chown 1234:5678 "$d/random.bin"
chown -h 42:43 "$d/a/symlink"
chmod 4751 "$d/text.txt"
chmod 1777 "$d/sticky"
setfattr -n user.color -v blue "$d/text.txt"
setfattr -n user.empty -v '' "$d/a"
setfattr -n trusted.md5 -v 0x0123456789abcdef "$d/random.bin"
touch -h -d '2001-02-03 04:05:06.123456789' "$d/a/symlink"
touch -d '1999-12-31 23:59:59.987654321' "$d/random.bin" "$d/empty"
touch -d '2030-01-01 00:00:00.000000001' "$d/sparse"
