# shellcheck shell=bash
# Read-write tests of the QEMU suite, sourced by run-all.sh (which defines
# run, must_fail, log_has, $WORK, $TREE, $ARBORFS, $HERE). Disks: vdj 2 GiB
# and vdk 64 MiB blank, vdl 512 MiB blank (its contents are checked on the
# host afterwards), vda the tool-made tree image.

GUEST=$HERE/guest

# mkfs DISK [OPTIONS...]: a fresh file system made by the host's tool.
mkfs() { local d=$1; shift; "$ARBORFS" format -q --force "$@" "/dev/$d" >/dev/null; }
fsck_clean() { umount /mnt 2>/dev/null; "$ARBORFS" fsck -n "/dev/$1" || { echo "fsck -n /dev/$1 is not clean"; return 1; }; }

t_posix_ops() {
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	python3 "$GUEST/posix_ops.py" /mnt write || return 1
	umount /mnt || return 1
	fsck_clean vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	# Drop the page cache and, through the shrinker, the engine's node cache.
	echo 3 >/proc/sys/vm/drop_caches
	python3 "$GUEST/posix_ops.py" /mnt verify || return 1
	umount /mnt && fsck_clean vdj
}

t_posix_ops_compressed() {
	mkfs vdj --compression zstd:3 --data-checksum xxhash64 || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	python3 "$GUEST/posix_ops.py" /mnt write || return 1
	umount /mnt || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	python3 "$GUEST/posix_ops.py" /mnt verify || return 1
	fsck_clean vdj
}

t_remount() {
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	echo before >/mnt/f || return 1
	mount -o remount,ro /mnt || return 1
	must_fail touch /mnt/g 2>/dev/null || return 1
	[[ $(cat /mnt/f) == before ]] || return 1
	"$ARBORFS" fsck -n /dev/vdj >/dev/null 2>&1 || true # O_EXCL: refused while mounted, never damaging
	mount -o remount,rw /mnt || return 1
	echo after >/mnt/g || return 1
	umount /mnt || return 1
	mount -t arborfs -o ro /dev/vdj /mnt || return 1
	[[ $(cat /mnt/f /mnt/g) == $'before\nafter' ]] || return 1
	fsck_clean vdj
}

# The tools beside the module: `arborfs version` names the loaded module's
# format, and fsck refuses a mounted device except a read-only check.
t_tools_on_mounted() {
	local out code
	out=$("$ARBORFS" version) || return 1
	grep -q '^kernel module: .*format' <<<"$out" || { echo "arborfs version: $out"; return 1; }
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	echo kept >/mnt/f || return 1
	for flag in -n -y -p; do
		code=0
		out=$("$ARBORFS" fsck "$flag" /dev/vdj 2>&1) || code=$?
		((code == 8)) && grep -q "is mounted" <<<"$out" ||
			{ echo "fsck $flag on a read-write mount: exit $code: $out"; return 1; }
	done
	mount -o remount,ro /mnt || return 1
	"$ARBORFS" fsck -n /dev/vdj >/dev/null || { echo "fsck -n of a read-only mount failed"; return 1; }
	code=0
	out=$("$ARBORFS" fsck -y /dev/vdj 2>&1) || code=$?
	((code == 8)) || { echo "fsck -y on a read-only mount: exit $code: $out"; return 1; }
	[[ $(cat /mnt/f) == kept ]] || return 1
	fsck_clean vdj
}

# discard: buckets a checkpoint frees are discarded (a loop device on tmpfs
# punches holes, so the backing file shrinks); nodiscard stops it; the data
# left is intact and fsck clean.
t_discard() {
	local img=/tmp/discard.img dev used full freed
	truncate -s 512M $img && dev=$(losetup -f --show $img) || return 1
	"$ARBORFS" format -q --force "$dev" >/dev/null || { losetup -d "$dev"; return 1; }
	mount -t arborfs -o discard "$dev" /mnt || { losetup -d "$dev"; return 1; }
	grep -q "^$dev /mnt arborfs .*discard" /proc/mounts || { echo "discard missing from /proc/mounts"; return 1; }
	head -c 1M /dev/urandom >/tmp/keep.bin
	cp /tmp/keep.bin /mnt/keep && head -c 96M /dev/urandom >/mnt/big && sync || return 1
	full=$(du -k $img | cut -f1)
	rm /mnt/big && umount /mnt || return 1
	used=$(du -k $img | cut -f1) freed=$((full - used))
	((freed > 64 * 1024)) || { echo "discard gave back $freed KiB of 96 MiB (image $full -> $used KiB)"; return 1; }
	mount -t arborfs -o nodiscard "$dev" /mnt || return 1
	grep -q "^$dev /mnt arborfs .*discard" /proc/mounts && { echo "nodiscard still shows discard"; return 1; }
	cmp /mnt/keep /tmp/keep.bin || return 1
	head -c 32M /dev/urandom >/mnt/big2 && sync && rm /mnt/big2 && umount /mnt || return 1
	used=$(du -k $img | cut -f1)
	mount -t arborfs "$dev" /mnt && umount /mnt || return 1
	(($(du -k $img | cut -f1) >= used)) || { echo "nodiscard discarded"; return 1; }
	"$ARBORFS" fsck -n "$dev" >/dev/null || { echo "fsck after discard"; return 1; }
	losetup -d "$dev" && rm -f $img /tmp/keep.bin
}

# FITRIM: with nodiscard, a deleted file's space stays on the loop image
# until fstrim, which gives it back and says how much; what is kept reads
# back, fsck is clean; a range under a block is refused (generic/288).
t_fstrim() {
	local img=/tmp/fstrim.img dev used full out
	truncate -s 512M $img && dev=$(losetup -f --show $img) || return 1
	"$ARBORFS" format -q --force "$dev" >/dev/null && mount -t arborfs "$dev" /mnt || { losetup -d "$dev"; return 1; }
	head -c 1M /dev/urandom >/tmp/keep.bin
	cp /tmp/keep.bin /mnt/keep && head -c 96M /dev/urandom >/mnt/big && sync && rm /mnt/big && sync || return 1
	full=$(du -k $img | cut -f1)
	out=$(fstrim -v /mnt) || { echo "fstrim failed: $out"; return 1; }
	used=$(du -k $img | cut -f1)
	((full - used > 64 * 1024)) || { echo "fstrim gave back $((full - used)) KiB of 96 MiB ($out)"; return 1; }
	[[ $out =~ \(([0-9]+)\ bytes\)\ trimmed ]] && ((BASH_REMATCH[1] >= 64 << 20)) || { echo "fstrim said: $out"; return 1; }
	fstrim -o 0 -l 100 /mnt 2>/dev/null && { echo "a 100-byte trim was accepted"; return 1; }
	cmp /mnt/keep /tmp/keep.bin && umount /mnt || return 1
	mount -t arborfs -o ro "$dev" /mnt || return 1
	fstrim /mnt 2>/dev/null && { echo "fstrim on a read-only mount"; umount /mnt; return 1; }
	cmp /mnt/keep /tmp/keep.bin && umount /mnt || return 1
	"$ARBORFS" fsck -n "$dev" >/dev/null || { echo "fsck after fstrim"; return 1; }
	losetup -d "$dev" && rm -f $img /tmp/keep.bin
}

# Swap files: swapon on an arborfs file (written, or preallocated), pages
# pushed out with MADV_PAGEOUT and faulted back in through it while files
# written before and after it keep their data; writes, truncation and
# fallocate refused while it is active; holes and compressed files refused
# at swapon; fsck clean afterwards.
swap_round_trip() {
	python3 - "$1" <<'PY'
import mmap, sys
n = 48 << 20
m = mmap.mmap(-1, n)
def mark(i):  # every page distinct, none of them zero
    return i.to_bytes(8, "little"), (~i & (2**64 - 1)).to_bytes(8, "little")
for i in range(0, n, 4096):
    m[i:i + 8], m[i + 4088:i + 4096] = mark(i)
m.madvise(21)  # MADV_PAGEOUT: reclaim these pages now, into swap
used = next((int(l.split()[3]) for l in open("/proc/swaps") if l.split()[0] == sys.argv[1]), 0)
if used < 16 << 10:
    sys.exit(f"only {used} KiB went to swap")
bad = sum(1 for i in range(0, n, 4096) if (m[i:i + 8], m[i + 4088:i + 4096]) != mark(i))
if bad:
    sys.exit(f"{bad} pages came back from swap wrong")
print(f"swap: {used} KiB out and back")
PY
}

t_swapfile() {
	mkfs vdj && mount -t arborfs /dev/vdj /mnt || return 1
	head -c 8M /dev/urandom >/tmp/neighbour.bin && cp /tmp/neighbour.bin /mnt/before || return 1
	dd if=/dev/zero of=/mnt/swap bs=1M count=64 status=none && chmod 600 /mnt/swap || return 1
	mkswap /mnt/swap >/dev/null && cp /tmp/neighbour.bin /mnt/after || return 1
	swapon /mnt/swap || { echo "swapon refused a written file"; return 1; }
	swap_round_trip /mnt/swap || { swapoff /mnt/swap; return 1; }
	local refused=1
	echo x >>/mnt/swap 2>/dev/null && { echo "appended to an active swap file"; refused=0; }
	truncate -s 4M /mnt/swap 2>/dev/null && { echo "truncated an active swap file"; refused=0; }
	fallocate -l 128M /mnt/swap 2>/dev/null && { echo "fallocate on an active swap file"; refused=0; }
	swapoff /mnt/swap && ((refused)) || return 1
	# Preallocated: unwritten extents are swap space too.
	fallocate -l 64M /mnt/prealloc && chmod 600 /mnt/prealloc && mkswap /mnt/prealloc >/dev/null || return 1
	swapon /mnt/prealloc || { echo "swapon refused a preallocated file"; return 1; }
	swap_round_trip /mnt/prealloc || { swapoff /mnt/prealloc; return 1; }
	swapoff /mnt/prealloc || return 1
	# A file with holes (mkswap writes only the header) is refused.
	truncate -s 64M /mnt/holes && chmod 600 /mnt/holes && mkswap /mnt/holes >/dev/null || return 1
	swapon /mnt/holes 2>/dev/null && { swapoff /mnt/holes; echo "swapon took a file with holes"; return 1; }
	echo 3 >/proc/sys/vm/drop_caches
	cmp /mnt/before /tmp/neighbour.bin && cmp /mnt/after /tmp/neighbour.bin ||
		{ echo "a neighbour of the swap file changed"; return 1; }
	fsck_clean vdj || return 1
	mkfs vdj --compression zstd && mount -t arborfs /dev/vdj /mnt || return 1
	dd if=/dev/zero of=/mnt/swap bs=1M count=16 status=none && chmod 600 /mnt/swap || return 1
	mkswap /mnt/swap >/dev/null || return 1
	swapon /mnt/swap 2>/dev/null && { swapoff /mnt/swap; echo "swapon took a compressed file"; return 1; }
	fsck_clean vdj && rm -f /tmp/neighbour.bin
}

# copy_file_range(2) within one mount and between two (generic/565 needs the
# second); the copies read back after a remount; fsck clean on both.
t_copy_range() {
	mkfs vdj && mkfs vdk && mkdir -p /run/mnt2 || return 1
	mount -t arborfs /dev/vdj /mnt && mount -t arborfs /dev/vdk /run/mnt2 || return 1
	head -c 3M /dev/urandom >/mnt/src || return 1
	python3 - /mnt/src /mnt/same /run/mnt2/other <<'PY' || { umount /run/mnt2; return 1; }
import os, sys
src, *dsts = sys.argv[1:]
size = os.stat(src).st_size
for dst in dsts:
    i, o = os.open(src, os.O_RDONLY), os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644)
    done = 0
    while done < size:
        n = os.copy_file_range(i, o, size - done, done, done)
        if n <= 0:
            sys.exit(f"copy_file_range to {dst} stopped at {done}")
        done += n
    os.close(i)
    os.close(o)
PY
	umount /run/mnt2 && umount /mnt || return 1
	mount -t arborfs /dev/vdj /mnt && mount -t arborfs /dev/vdk /run/mnt2 || return 1
	cmp /mnt/src /mnt/same && cmp /mnt/src /run/mnt2/other || { umount /run/mnt2; return 1; }
	umount /run/mnt2 && fsck_clean vdk && fsck_clean vdj
}

# 1 KiB blocks: the VFS block size follows the file system's (st_blksize,
# fallocate's shift alignment), so collapse and insert at 1 KiB offsets work
# (generic/641, the block-sized mkfs tests); the data reads back after a
# remount; fsck clean.
t_small_blocks() {
	mkfs vdj --block-size 1024 && mount -t arborfs /dev/vdj /mnt || return 1
	[[ $(stat -f -c %S /mnt) == 1024 ]] || { echo "statfs block size $(stat -f -c %S /mnt)"; return 1; }
	python3 - /mnt/shift <<'PY' || return 1
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.fallocate.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_long, ctypes.c_long]
COLLAPSE, INSERT = 8, 0x20
data = bytes((i * 7 + (i >> 10)) % 251 for i in range(64 << 10))
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, data, 0)
if os.fstat(fd).st_blksize != 1024:
    sys.exit(f"st_blksize {os.fstat(fd).st_blksize}")
for mode, off, n in ((COLLAPSE, 3072, 1024), (INSERT, 5120, 2048)):
    if libc.fallocate(fd, mode, off, n):
        sys.exit(f"fallocate {mode:#x} at {off}: {os.strerror(ctypes.get_errno())}")
want = data[:3072] + data[4096:]
want = want[:5120] + bytes(2048) + want[5120:]
if os.pread(fd, 1 << 20, 0) != want:
    sys.exit("the shifted data differs")
os.close(fd)
with open(sys.argv[1] + ".want", "wb") as f:
    f.write(want)
PY
	umount /mnt && mount -t arborfs /dev/vdj /mnt && cmp /mnt/shift /mnt/shift.want || return 1
	fsck_clean vdj
}

# readahead=: the mount's own bdi carries the window (4 MiB by default,
# against the block device's 128 KiB), /proc/mounts shows a non-default
# one, remount changes it, and bad sizes are refused. Pages in the page
# cache (mincore) show how far ahead of a sequential reader arborfs read,
# and that a random read keeps the checksum chunk around it (but not with
# readahead=0).
cached_kib() {
	python3 -c '
import ctypes, mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
# A private mapping is writable for ctypes and touches no page until used.
m = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE)
vec = (ctypes.c_ubyte * ((size + 4095) // 4096))()
libc = ctypes.CDLL(None, use_errno=True)
if libc.mincore(ctypes.c_void_p(ctypes.addressof(ctypes.c_char.from_buffer(m))), ctypes.c_size_t(size), vec):
    sys.exit("mincore: " + os.strerror(ctypes.get_errno()))
print(sum(v & 1 for v in vec) * 4)
' "$1"
}

t_readahead() {
	local bdi cached
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	bdi=$(echo /sys/class/bdi/arborfs-*) && [[ -f $bdi/read_ahead_kb ]] || { echo "no arborfs bdi: $bdi"; return 1; }
	[[ $(cat "$bdi/read_ahead_kb") == 4096 ]] || { echo "default window $(cat "$bdi/read_ahead_kb") KiB"; return 1; }
	grep -q "^/dev/vdj /mnt arborfs .*readahead" /proc/mounts && { echo "the default window shows in /proc/mounts"; return 1; }
	head -c 16M /dev/urandom >/tmp/seq.bin && cp /tmp/seq.bin /mnt/seq && head -c 1M /dev/urandom >/mnt/one || return 1
	umount /mnt && mount -t arborfs /dev/vdj /mnt || return 1
	dd if=/mnt/seq of=/dev/null bs=4k count=1024 status=none || return 1
	cached=$(cached_kib /mnt/seq) || return 1
	# The device's 128 KiB window would be at most 256 KiB ahead.
	((cached >= 4096 + 512)) || { echo "read 4096 KiB in sequence, $cached KiB cached"; return 1; }
	# The same read with the device's window stays about two windows (256 KiB) ahead.
	mount -o remount,readahead=128k /mnt && echo 3 >/proc/sys/vm/drop_caches || return 1
	dd if=/mnt/seq of=/dev/null bs=4k count=1024 status=none || return 1
	local small
	small=$(cached_kib /mnt/seq) || return 1
	((small <= 4096 + 384)) || { echo "readahead=128k: read 4096 KiB, $small KiB cached"; return 1; }
	echo "arborfs test: read 4096 KiB in sequence: $cached KiB cached with the 4 MiB window, $small KiB with 128 KiB" >/dev/kmsg
	# A random read (advised so: one page asked for) reads the 32 KiB
	# checksum chunk around it anyway, and keeps it cached.
	echo 3 >/proc/sys/vm/drop_caches || return 1
	python3 -c '
import os, sys
fd = os.open("/mnt/seq", os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
want = open("/tmp/seq.bin", "rb").read()
at = 100 * 1024 + 4096
if os.pread(fd, 4096, at) != want[at:at + 4096]:
    sys.exit("random read: wrong bytes")
' || return 1
	cached=$(cached_kib /mnt/seq) || return 1
	((cached == 32)) || { echo "a random 4 KiB read in a 32 KiB chunk: $cached KiB cached"; return 1; }
	mount -o remount,readahead=0 /mnt || return 1
	grep -q "^/dev/vdj /mnt arborfs .*readahead=0k" /proc/mounts || { echo "readahead=0 missing from /proc/mounts"; return 1; }
	dd if=/mnt/one of=/dev/null bs=4k count=1 status=none || return 1
	cached=$(cached_kib /mnt/one) || return 1
	((cached == 4)) || { echo "readahead=0: one page read, $cached KiB cached"; return 1; }
	umount /mnt || return 1
	local bad
	for bad in readahead=abc readahead=65m readahead=1000 readahead=; do
		must_fail mount -t arborfs -o $bad /dev/vdj /mnt || { echo "$bad accepted"; return 1; }
	done
	mount -t arborfs -o readahead=2m /dev/vdj /mnt || return 1
	grep -q "^/dev/vdj /mnt arborfs .*readahead=2048k" /proc/mounts || { echo "readahead=2m not in /proc/mounts"; return 1; }
	cmp /mnt/seq /tmp/seq.bin || { echo "readahead=2m: file differs"; return 1; }
	rm -f /tmp/seq.bin
	fsck_clean vdj
}

t_freeze() {
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	echo frozen >/mnt/f || return 1
	fsfreeze -f /mnt || return 1
	# A writer blocks while frozen and finishes after the thaw.
	(echo thawed >/mnt/g) &
	local pid=$!
	sleep 2
	kill -0 "$pid" 2>/dev/null || { echo "write went through a frozen file system"; fsfreeze -u /mnt; return 1; }
	fsfreeze -u /mnt || return 1
	wait "$pid" || return 1
	[[ $(cat /mnt/g) == thawed ]] || return 1
	fsck_clean vdj
}

t_shutdown() {
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	echo durable >/mnt/kept && sync || return 1
	echo lost >/mnt/maybe
	python3 - <<-'EOF' || return 1
	import fcntl, os, struct, errno
	fd = os.open("/mnt", os.O_RDONLY)
	fcntl.ioctl(fd, 0x8004587d, struct.pack("I", 2))  # XFS_IOC_GOINGDOWN, NOLOGFLUSH
	try:
	    open("/mnt/after", "w")
	    raise SystemExit("create after shutdown succeeded")
	except OSError as e:
	    assert e.errno == errno.EIO, e
	EOF
	log_has "shut down" || return 1
	umount /mnt || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	[[ $(cat /mnt/kept) == durable && ! -e /mnt/after ]] || return 1
	fsck_clean vdj
}

t_enospc() {
	mkfs vdk || return 1
	mount -t arborfs /dev/vdk /mnt || return 1
	echo keep >/mnt/keep && sync || return 1
	local i=0
	# Fill it with files, then with one big file: both end in ENOSPC, not in lost data.
	while head -c 1M /dev/urandom >"/mnt/f$i" 2>/dev/null; do i=$((i + 1)); ((i < 200)) || break; done
	((i < 200)) || { echo "64 MiB took 200 MiB"; return 1; }
	must_fail dd if=/dev/zero of=/mnt/big bs=1M count=100 status=none 2>/dev/null || return 1
	sync
	echo "filled with $i MiB files; df: $(df -k /mnt | tail -1)"
	[[ $(cat /mnt/keep) == keep ]] || return 1
	# Freeing space makes it writable again.
	rm -f /mnt/f* /mnt/big && sync || return 1
	head -c 8M /dev/urandom >/mnt/again || return 1
	umount /mnt || return 1
	fsck_clean vdk || return 1
	mount -t arborfs /dev/vdk /mnt || return 1
	[[ $(stat -c %s /mnt/again) == 8388608 ]]
}

# Metadata on a full file system (generic/626): empty files after data
# filled it end in ENOSPC, the unmount still writes its checkpoint, and
# deleting works. Dirty data in the page cache keeps its room: files
# created before writeback cannot take it.
t_enospc_metadata() {
	mkfs vdk || return 1
	mount -t arborfs /dev/vdk /mnt || return 1
	must_fail dd if=/dev/zero of=/mnt/fill bs=1M status=none 2>/dev/null || return 1
	local i=0
	while ((i < 100000)) && : 2>/dev/null >"/mnt/e$i"; do i=$((i + 1)); done
	((i < 100000)) || { echo "100000 empty files fit on a full 64 MiB file system"; return 1; }
	echo "$i empty files after data filled it"
	umount /mnt || { echo "unmount of the full file system failed"; dmesg | tail -3; return 1; }
	fsck_clean vdk || return 1
	mount -t arborfs /dev/vdk /mnt || return 1
	rm -f /mnt/e* /mnt/fill && sync || return 1
	# Nearly all the free space dirty (the engine keeps 4 MiB for
	# metadata), not written back until the sync below.
	local mib=$(($(df -k --output=avail /mnt | tail -1) / 1024 - 6))
	local wb=$(</proc/sys/vm/dirty_writeback_centisecs) ex=$(</proc/sys/vm/dirty_expire_centisecs)
	echo 0 >/proc/sys/vm/dirty_writeback_centisecs
	echo 360000 >/proc/sys/vm/dirty_expire_centisecs
	head -c "${mib}M" /dev/urandom >/tmp/dirty.src
	cp /tmp/dirty.src /mnt/dirty || return 1
	i=0
	while ((i < 100000)) && : 2>/dev/null >"/mnt/g$i"; do i=$((i + 1)); done
	echo "$wb" >/proc/sys/vm/dirty_writeback_centisecs
	echo "$ex" >/proc/sys/vm/dirty_expire_centisecs
	echo "$i empty files with $mib MiB dirty"
	sync /mnt/dirty || { echo "writeback of reserved dirty data failed"; return 1; }
	umount /mnt || return 1
	fsck_clean vdk || return 1
	mount -t arborfs /dev/vdk /mnt || return 1
	cmp /tmp/dirty.src /mnt/dirty || return 1
	umount /mnt
}

# FIEMAP, collapse/insert range, FSGETXATTR/FSSETXATTR, statx, st_blocks
# of sparse writes, GETFSUUID/GETFSSYSFSPATH (guest/features.py).
features() {
	mkfs vdj "$@" || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	local uuid
	uuid=$("$ARBORFS" show-super --json /dev/vdj | python3 -c 'import json,sys; print(json.load(sys.stdin)["uuid"])')
	python3 "$GUEST/features.py" /mnt /dev/vdj "$uuid" "${FEATURES_MODE:-plain}" || return 1
	umount /mnt && fsck_clean vdj
}
t_fs_features() { features; }
t_fs_features_compressed() { FEATURES_MODE=compressed features --compression zstd --data-checksum xxhash64; }

# norecovery: read-only without replaying the journal (vdi holds changes
# only in its journal); refused read-write, and for a read-write remount.
t_norecovery() {
	mount -t arborfs -o ro,norecovery /dev/vdi /mnt || return 1
	[[ ! -e /mnt/replayed/file ]] || { echo "norecovery replayed the journal"; return 1; }
	grep -q 'norecovery' /proc/mounts || { echo "norecovery missing from /proc/mounts"; return 1; }
	must_fail mount -o remount,rw /mnt 2>/dev/null || return 1
	umount /mnt || return 1
	must_fail mount -t arborfs -o norecovery /dev/vdi /mnt 2>/dev/null || return 1
	log_has "norecovery needs a read-only mount" || return 1
	mount -t arborfs -o ro,noload /dev/vdi /mnt || return 1
	[[ ! -e /mnt/replayed/file ]] || return 1
	umount /mnt || return 1
	# An ordinary mount still replays it.
	mount -t arborfs -o ro /dev/vdi /mnt || return 1
	cmp /mnt/replayed/file "$WORK/replayed.expected"
}

# 4 MiB of text (not `yes | head`: pipefail would see yes's SIGPIPE).
text() { python3 -c 'import sys; sys.stdout.buffer.write((b"compressible line of text " * 161320)[:4 << 20])'; }

t_compress_option() {
	mkfs vdj --data-checksum crc32c || return 1
	must_fail mount -t arborfs -o compress=brotli /dev/vdj /mnt 2>/dev/null || return 1
	log_has "compress=brotli" || return 1
	mount -t arborfs -o compress=lz4 /dev/vdj /mnt || return 1
	text >/mnt/lz4 || return 1
	mount -o remount,compress=none /mnt || return 1
	text >/mnt/plain || return 1
	sync
	local lz4_kib plain_kib
	lz4_kib=$(du -k /mnt/lz4 | cut -f1) plain_kib=$(du -k /mnt/plain | cut -f1)
	echo "4 MiB of text: lz4 ${lz4_kib} KiB, none ${plain_kib} KiB"
	((lz4_kib < 1024 && plain_kib >= 4096)) || return 1
	umount /mnt && mount -t arborfs /dev/vdj /mnt || return 1
	cmp /mnt/lz4 /mnt/plain || return 1
	fsck_clean vdj || return 1
	# The tools' lz4_flex reads what the kernel's lz4 wrote.
	"$ARBORFS" restore /dev/vdj /tmp/restored >/dev/null || return 1
	cmp /tmp/restored/lz4 /tmp/restored/plain && rm -rf /tmp/restored
}

# Unlinked (or O_TMPFILE) while open when the system went down: the next
# mount deletes it.
t_orphan_after_crash() {
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	local before during after
	before=$(stat -f -c %f /mnt)
	# An unlinked file and an O_TMPFILE file, both open with fsync'd data,
	# when the file system stops: nothing more is written after that.
	during=$(python3 - <<'EOF'

import fcntl, os, struct
held = os.open("/mnt/held", os.O_RDWR | os.O_CREAT, 0o600)
tmp = os.open("/mnt", os.O_TMPFILE | os.O_RDWR, 0o600)
for fd in (held, tmp):
    for _ in range(16):
        os.write(fd, os.urandom(1 << 20))
    os.fsync(fd)
os.unlink("/mnt/held")
os.sync()
print(os.statvfs("/mnt").f_bfree)
fcntl.ioctl(os.open("/mnt", os.O_RDONLY), 0x8004587d, struct.pack("I", 1))
EOF
) || return 1
	umount /mnt || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	after=$(stat -f -c %f /mnt)
	echo "free blocks: $before before, $during with the files open, $after after the orphan pass"
	((during + 8000 <= before && after + 1024 >= before)) || return 1
	fsck_clean vdj
}

# fio with crc32c verification: sequential, random and mixed, buffered and direct.
t_fio_verify() {
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	local job
	for job in "--rw=write --bs=1M" "--rw=randwrite --bs=4k" "--rw=randrw --bs=16k --direct=1" \
		"--rw=write --bs=64k --fsync=8"; do
		# shellcheck disable=SC2086 # the job options split on purpose
		fio --name=verify --directory=/mnt --size=32M --numjobs=2 --ioengine=psync $job \
			--verify=crc32c --verify_fatal=1 --do_verify=1 --group_reporting --output-format=terse \
			>/tmp/fio.out 2>&1 || { echo "fio $job failed"; tail -20 /tmp/fio.out; return 1; }
		rm -f /mnt/verify.*
	done
	fsck_clean vdj
}

# stress-ng's file system stressors at once, on small nodes (deep trees,
# many splits and merges), while the caches are dropped every half second
# or so. The node cache's shrinker only trylocks the engine lock, so under
# this load it evicts little; what it does evict, calls of every kind find
# on disk only, and fetch without the lock.
t_stress_ng() {
	mkfs vdj --btree-node-size 16k || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	mkdir /mnt/stress && cd /mnt/stress || return 1
	local rc=0 dropper
	# (From /, so that nothing of it keeps the mount busy.)
	(cd / && while sleep 0.$((RANDOM % 9 + 1)); do echo 3 >/proc/sys/vm/drop_caches; done) &
	dropper=$!
	stress-ng --temp-path /mnt/stress --timeout "${STRESS_SECONDS:-90}" --metrics-brief \
		--dir 2 --dentry 2 --rename 2 --link 2 --symlink 2 --hdd 2 --hdd-bytes 16M \
		--xattr 2 --fallocate 2 --fallocate-bytes 16M --mmap 1 --mmap-bytes 16M --iomix 2 \
		--iomix-bytes 16M --filename 1 --chmod 1 --utime 1 --seek 1 --seek-size 16M >/tmp/stress.out 2>&1 || rc=$?
	kill "$dropper"
	wait "$dropper" 2>/dev/null
	cd / || return 1
	echo "arborfs test: stress-ng:$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats)" >/dev/kmsg
	((rc == 0)) || { echo "stress-ng failed ($rc)"; tail -30 /tmp/stress.out; return 1; }
	fsck_clean vdj
}

# Many processes on shared and private files and directories at once. Reads
# (lookup, getattr, readdir, xattrs, links, read plans) take the engine lock
# shared: the mount's counters must show them inside the engine together,
# and nodes they missed read in without the lock (the run starts cold, and
# node caches are dropped meanwhile); so must changes, which hold the lock
# exclusively but are refused and made again rather than read a node
# under it; and so must the bodies of changes (create, rename, unlink,
# attributes), made with the lock shared and committed exclusively.
t_concurrency() {
	local stats shared overlaps misses fetches refused optimistic change_overlaps conflicts
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	python3 "$GUEST/concurrency.py" /mnt prepare || return 1
	umount /mnt && mount -t arborfs /dev/vdj /mnt || return 1
	python3 "$GUEST/concurrency.py" /mnt || return 1
	stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats) || { echo "no mountstats line"; return 1; }
	shared=$(sed -n 's/.* shared_calls=\([0-9]*\).*/\1/p' <<<"$stats")
	overlaps=$(sed -n 's/.* shared_overlaps=\([0-9]*\).*/\1/p' <<<"$stats")
	misses=$(sed -n 's/.* shared_misses=\([0-9]*\).*/\1/p' <<<"$stats")
	fetches=$(sed -n 's/.* node_fetches=\([0-9]*\).*/\1/p' <<<"$stats")
	optimistic=$(sed -n 's/.* optimistic_changes=\([0-9]*\).*/\1/p' <<<"$stats")
	change_overlaps=$(sed -n 's/.* change_overlaps=\([0-9]*\).*/\1/p' <<<"$stats")
	conflicts=$(sed -n 's/.* change_conflicts=\([0-9]*\).*/\1/p' <<<"$stats")
	echo "shared engine calls $shared, overlapping $overlaps, nodes read in without the lock $fetches, made again exclusively $misses"
	echo "changes with their body made shared $optimistic, bodies beside another call $change_overlaps, made again after a conflict $conflicts"
	echo "arborfs test: concurrency:$stats" >/dev/kmsg
	((overlaps > 0)) || { echo "no shared engine call overlapped another: $stats"; return 1; }
	((fetches > 0)) || { echo "no node read in for a shared call: $stats"; return 1; }
	((optimistic > 0)) || { echo "no change was made optimistically: $stats"; return 1; }
	((change_overlaps > 0)) || { echo "no change's body ran beside another call: $stats"; return 1; }
	# Changes from a cold cache, where the lookups before them do not
	# read what they change: extended attributes (their own tree) and
	# deletions (the files' extents), both checked afterwards.
	umount /mnt && mount -t arborfs /dev/vdj /mnt || return 1
	python3 - <<'EOF' || return 1
import os
for i in range(0, 200, 3):
    os.setxattr(f"/mnt/stable/s{i}", "user.cold", str(i).encode())
for i in range(0, 200, 3):
    assert os.getxattr(f"/mnt/stable/s{i}", "user.cold") == str(i).encode()
for i in range(1, 200, 3):
    os.unlink(f"/mnt/stable/s{i}")
left = [n for n in os.listdir("/mnt/stable") if n.startswith("s")]
assert len(left) == 200 - len(range(1, 200, 3)), len(left)
EOF
	stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats) || return 1
	refused=$(sed -n 's/.* refused_writes=\([0-9]*\).*/\1/p' <<<"$stats")
	echo "changes refused for a node on disk only and made again: $refused"
	echo "arborfs test: concurrency, cold changes:$stats" >/dev/kmsg
	((refused > 0)) || { echo "no change was refused a node and made again: $stats"; return 1; }
	umount /mnt && fsck_clean vdj
}

# Readers of cold files read the device without the engine mutex while
# other calls run: four readers and a creating, fsyncing writer at once,
# every byte right, and the mount's counters (/proc/self/mountstats) show
# reads whose device I/O overlapped another engine call, and writes done
# outside the mutex.
t_concurrent_reads() {
	local i stats planned overlapped written
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	for i in 0 1 2 3; do
		head -c 6M /dev/urandom >/tmp/reads.$i && cp /tmp/reads.$i /mnt/r$i || return 1
		sha256sum </tmp/reads.$i >/tmp/reads.$i.want && rm /tmp/reads.$i || return 1
	done
	mkdir /mnt/meta && sync && echo 3 >/proc/sys/vm/drop_caches
	for i in 0 1 2 3; do
		sha256sum </mnt/r$i >/tmp/reads.$i.got &
	done
	python3 -c '
import os, sys
for i in range(150):
    fd = os.open(f"{sys.argv[1]}/meta/{i}", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"x" * 100)
    os.fsync(fd)
    os.close(fd)
' /mnt &
	wait
	for i in 0 1 2 3; do
		cmp /tmp/reads.$i.want /tmp/reads.$i.got || { echo "r$i read back wrong"; return 1; }
	done
	[[ $(ls /mnt/meta | wc -l) == 150 ]] || { echo "files lost"; return 1; }
	stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats) || { echo "no mountstats line"; return 1; }
	planned=$(sed -n 's/.* planned_reads=\([0-9]*\).*/\1/p' <<<"$stats")
	overlapped=$(sed -n 's/.* overlapped_reads=\([0-9]*\).*/\1/p' <<<"$stats")
	written=$(sed -n 's/.* planned_writes=\([0-9]*\).*/\1/p' <<<"$stats")
	echo "arborfs test: concurrent reads:$stats" >/dev/kmsg
	((planned > 0)) || { echo "no read planned: $stats"; return 1; }
	((overlapped > 0)) || { echo "no read overlapped another engine call: $stats"; return 1; }
	# The copies in were written back as whole blocks outside the mutex too.
	((written > 0)) || { echo "no write planned: $stats"; return 1; }
	umount /mnt && rm -f /tmp/reads.* && fsck_clean vdj
}

# O_DIRECT reads land in the caller's pages when position and memory are
# sector-aligned (direct_read_bytes counts them), into anonymous memory and
# into another file's shared mapping (whose pages must come back dirty);
# a misaligned buffer and a short tail still read right, through a bounce.
direct_read_bytes() {
	local stats
	stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats) || return 1
	sed -n 's/.* direct_read_bytes=\([0-9]*\).*/\1/p' <<<"$stats"
}

t_direct_reads() {
	local before after
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	head -c $((8 * 1048576 + 100)) /dev/urandom >/tmp/direct.bin && cp /tmp/direct.bin /mnt/src || return 1
	head -c 1M /dev/zero >/mnt/dst && sync || return 1
	before=$(direct_read_bytes)
	python3 - /mnt /tmp/direct.bin <<'PY' || return 1
import mmap, os, sys
mnt, want_path = sys.argv[1], sys.argv[2]
want = open(want_path, "rb").read()
fd = os.open(f"{mnt}/src", os.O_RDONLY | os.O_DIRECT)
def check(ok, what):
    if not ok:
        sys.exit(f"O_DIRECT read: {what}")
# Aligned anonymous memory, 1 MiB at a time, the short tail included.
buf = mmap.mmap(-1, 1 << 20)
got = bytearray()
off = 0
while True:
    n = os.preadv(fd, [buf], off)
    got += buf[:n]
    off += n
    if n < len(buf):
        break
check(bytes(got) == want, "aligned reads differ")
# Into another file's shared mapping: what lands there must reach that file.
dfd = os.open(f"{mnt}/dst", os.O_RDWR)
dmap = mmap.mmap(dfd, 1 << 20, mmap.MAP_SHARED)
check(os.preadv(fd, [dmap], 3 << 20) == 1 << 20, "short read into a mapping")
dmap.flush()
dmap.close()
os.fsync(dfd)
os.close(dfd)
check(open(f"{mnt}/dst", "rb").read() == want[3 << 20:4 << 20], "the mapped file did not get the data")
# Misaligned memory: read right through a bounce.
view = memoryview(buf)[1:1 + 65536]
check(os.preadv(fd, [view], 4096) == 65536 and bytes(view) == want[4096:4096 + 65536], "misaligned buffer")
PY
	after=$(direct_read_bytes)
	echo "arborfs test: direct reads: $((after - before)) bytes into the caller's pages" >/dev/kmsg
	# The 8 MiB and the tail, and the 1 MiB into the mapping; not the misaligned read.
	((after - before == 9 * 1048576 + 100)) || { echo "direct_read_bytes moved by $((after - before))"; return 1; }
	echo 3 >/proc/sys/vm/drop_caches
	dd if=/tmp/direct.bin of=/tmp/direct.want bs=1M skip=3 count=1 status=none || return 1
	cmp /mnt/dst /tmp/direct.want || { echo "dst lost after drop_caches"; return 1; }
	umount /mnt && rm -f /tmp/direct.bin /tmp/direct.want && fsck_clean vdj
}

# Large folios: small writes into cached large folios, rewrites racing
# their writeback (stable writes), unaligned I/O across folios (folios.py).
t_large_folios() {
	local i logged
	# Earlier tests (broken_data) log checksum errors of their own.
	logged=$(dmesg | grep -c "arborfs.*checksum")
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	python3 "$GUEST/folios.py" /mnt || return 1
	for i in 1 2 3 4 5 6 7 8; do
		python3 "$GUEST/folios.py" /mnt race || return 1
		umount /mnt && mount -t arborfs /dev/vdj /mnt || return 1
		cat /mnt/stable >/dev/null || { echo "stable: a committed extent does not match its checksum"; return 1; }
	done
	(($(dmesg | grep -c "arborfs.*checksum") == logged)) ||
		{ echo "checksum errors logged"; dmesg | grep "arborfs.*checksum" | tail; return 1; }
	fsck_clean vdj
}

# Files that end in a partial block (most files) are written back whole,
# their last block padded with zeros, without the engine writing anything
# under its mutex; bytes stored past EOF through mmap are zeroed, so a size
# extended later reads zeros. With 4 KiB and 1 KiB blocks (a folio then
# holds several blocks, and the plan stops at the one holding EOF).
t_partial_tails() {
	local bs stats unplanned planned
	for bs in 4096 1024; do
		mkfs vdj --block-size $bs && mount -t arborfs /dev/vdj /mnt || return 1
		python3 - /mnt <<'PY' || return 1
import ctypes, hashlib, mmap, os, random, sys
d = sys.argv[1]
rng = random.Random(7)
want = {}
for i in range(300):
    size = rng.randrange(1, 40 * 1024)
    if size % 4096 == 0:
        size += 1
    data = rng.randbytes(size)
    with open(f"{d}/f{i}", "wb") as f:
        f.write(data)
    want[i] = hashlib.sha256(data).hexdigest()
# A store past EOF through a shared mapping of the last page, then the size
# grown: the new bytes must read as zeros, after writeback and from disk.
# (Python's mmap refuses a mapping past EOF: libc's mmap does not.)
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.msync.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
fd = os.open(f"{d}/mapped", os.O_RDWR | os.O_CREAT, 0o644)
os.write(fd, b"m" * 5000)
addr = libc.mmap(None, 8192, mmap.PROT_READ | mmap.PROT_WRITE, mmap.MAP_SHARED, fd, 0)
if addr in (None, ctypes.c_void_p(-1).value):
    sys.exit("mmap failed")
ctypes.memmove(addr + 5000, b"J" * 3192, 3192)
if libc.msync(addr, 8192, 4) or libc.munmap(addr, 8192):  # 4: MS_SYNC
    sys.exit("msync or munmap failed")
os.fsync(fd)
os.ftruncate(fd, 8192)
got = os.pread(fd, 8192, 0)
if got != b"m" * 5000 + bytes(3192):
    sys.exit("bytes stored past EOF through mmap show after the size grew")
os.close(fd)
with open(f"{d}/want", "w") as f:
    for i, h in want.items():
        f.write(f"{i} {h}\n")
PY
		sync
		stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats) || { echo "no mountstats line"; return 1; }
		echo "arborfs test: partial tails ($bs):$stats" >/dev/kmsg
		unplanned=$(sed -n 's/.* unplanned_writes=\([0-9]*\).*/\1/p' <<<"$stats")
		planned=$(sed -n 's/.* planned_writes=\([0-9]*\).*/\1/p' <<<"$stats")
		((planned >= 300)) || { echo "$bs: fewer planned writes than files: $stats"; return 1; }
		((unplanned == 0)) || { echo "$bs: the engine wrote $unplanned tails under its mutex: $stats"; return 1; }
		umount /mnt && mount -t arborfs /dev/vdj /mnt || return 1
		python3 - /mnt <<'PY' || return 1
import hashlib, sys
d = sys.argv[1]
for line in open(f"{d}/want"):
    i, h = line.split()
    if hashlib.sha256(open(f"{d}/f{i}", "rb").read()).hexdigest() != h:
        sys.exit(f"f{i} read back wrong")
if open(f"{d}/mapped", "rb").read() != b"m" * 5000 + bytes(3192):
    sys.exit("mapped: wrong after a remount")
PY
		fsck_clean vdj || return 1
	done
}

# Group commit: four processes creating files with an fsync each share
# journal writes (a sync arriving while one is in flight waits for it, then
# the waiters share the next), and every fsync'd file is there after a
# remount. The disk has a write cache and no FUA of its own (the block
# layer follows a FUA write with a flush), so journal entries go without a
# flush before them: unordered, or with no data written since a flush.
t_group_commit() {
	local stats syncs waits writes preflushes i
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	for i in 0 1 2 3; do
		python3 -c '
import os, sys
d = sys.argv[1]
os.mkdir(d)
for i in range(60):
    fd = os.open(f"{d}/{i}", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, f"{d}/{i}\n".encode() * 50)
    os.fsync(fd)
    os.close(fd)
' /mnt/w$i &
	done
	wait
	stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats) || { echo "no mountstats line"; return 1; }
	echo "arborfs test: group commit:$stats" >/dev/kmsg
	syncs=$(sed -n 's/.* syncs=\([0-9]*\).*/\1/p' <<<"$stats")
	waits=$(sed -n 's/.* sync_waits=\([0-9]*\).*/\1/p' <<<"$stats")
	writes=$(sed -n 's/.* journal_writes=\([0-9]*\).*/\1/p' <<<"$stats")
	((syncs >= 240)) || { echo "fewer syncs than fsyncs: $stats"; return 1; }
	((waits > 0)) || { echo "no sync waited for another's journal write: $stats"; return 1; }
	((writes < syncs)) || { echo "no journal write was shared: $stats"; return 1; }
	preflushes=$(sed -n 's/.* journal_preflushes=\([0-9]*\).*/\1/p' <<<"$stats")
	((preflushes * 10 < writes)) || { echo "journal writes with a flush before them: $stats"; return 1; }
	umount /mnt && mount -t arborfs /dev/vdj /mnt || return 1
	for i in 0 1 2 3; do
		for f in 0 17 59; do
			[[ $(head -1 /mnt/w$i/$f) == "/mnt/w$i/$f" ]] || { echo "w$i/$f lost"; return 1; }
		done
		[[ $(ls /mnt/w$i | wc -l) == 60 ]] || { echo "w$i: files lost"; return 1; }
	done
	umount /mnt && fsck_clean vdj
}

# The commit of a file's writeback gives the engine its times, so the
# fsync after a write needs no transaction for them (write_inode finds
# them held: mountstats times_held), and the times stick across a remount:
# a write's own, and those of a utimes made after the data was written
# back, before the next fsync.
t_fsync_times() {
	local stats held before after
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	python3 -c '
import os, time
fd = os.open("/mnt/a", os.O_CREAT | os.O_WRONLY, 0o644)
for i in range(20):
    time.sleep(0.01)
    os.pwrite(fd, bytes([i]) * 4096, i * 4096)
    os.fsync(fd)
os.close(fd)
fd = os.open("/mnt/b", os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"b" * 8192)
os.fsync(fd)
os.utime("/mnt/b", ns=(1_000_000_001, 2_000_000_002))
os.write(fd, b"c" * 4096)
os.utime("/mnt/b", ns=(3_000_000_003, 4_000_000_004))
os.fsync(fd)
os.close(fd)
' || return 1
	stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats) || return 1
	held=$(sed -n 's/.* times_held=\([0-9]*\).*/\1/p' <<<"$stats")
	((held >= 10)) || { echo "fsyncs after writes wrote their times on their own: $stats"; return 1; }
	before=$(stat -c '%X %Y %Z %s' /mnt/a; stat -c '%x %y %s' /mnt/b)
	umount /mnt && mount -t arborfs /dev/vdj /mnt || return 1
	after=$(stat -c '%X %Y %Z %s' /mnt/a; stat -c '%x %y %s' /mnt/b)
	[[ $before == "$after" ]] || { echo "times changed across a remount: $before / $after"; return 1; }
	[[ $(stat -c %y /mnt/b) == "1970-01-01 00:00:04.000000004"* ]] || { echo "utimes lost: $(stat -c %y /mnt/b)"; return 1; }
	umount /mnt && fsck_clean vdj
}

# acl and noacl (ext4's options): with noacl a directory's default ACL is
# ignored and the umask alone decides a new file's mode, setfacl is refused
# and /proc/mounts says noacl; remount with acl turns them back on.
t_acl_option() {
	local mode
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	mkdir /mnt/d && setfacl -d -m u::rwx,g::rwx,o::rwx /mnt/d || return 1
	(umask 077 && touch /mnt/d/a) && mode=$(stat -c %a /mnt/d/a) || return 1
	[[ $mode == 666 ]] || { echo "default ACL not applied with acl: $mode"; return 1; }
	umount /mnt && mount -t arborfs -o noacl /dev/vdj /mnt || return 1
	grep -q ' /mnt arborfs .*noacl' /proc/mounts || { echo "noacl not in /proc/mounts"; return 1; }
	(umask 077 && touch /mnt/d/b) && mode=$(stat -c %a /mnt/d/b) || return 1
	[[ $mode == 600 ]] || { echo "umask not applied with noacl: $mode"; return 1; }
	must_fail setfacl -m u:1234:r /mnt/d/b 2>/dev/null || { echo "setfacl worked with noacl"; return 1; }
	mount -o remount,acl /mnt || return 1
	grep -q ' /mnt arborfs .*noacl' /proc/mounts && { echo "noacl still in /proc/mounts"; return 1; }
	(umask 077 && touch /mnt/d/c) && mode=$(stat -c %a /mnt/d/c) || return 1
	[[ $mode == 666 ]] || { echo "default ACL not applied after remount,acl: $mode"; return 1; }
	setfacl -m u:1234:r /mnt/d/c && getfacl -n /mnt/d/c 2>/dev/null | grep -q '^user:1234:r--' ||
		{ echo "setfacl after remount,acl"; return 1; }
	umount /mnt && fsck_clean vdj
}

# Small files written back together: 1200 files of 1 byte to 40 KiB (and
# one file of scattered 4 KiB blocks) are written by one sync(2), on a
# plain mount and on an lz4 one. Runs of several files are written as
# groups (wb_groups), each file reads back right from a cold cache, and
# fsck is clean.
grouped_round() {
	local opts=$1 stats groups
	mkfs vdj || return 1
	mount -t arborfs ${opts:+-o "$opts"} /dev/vdj /mnt || return 1
	python3 - /mnt <<'PY' || return 1
import hashlib, os, random, sys
root = sys.argv[1]
rng = random.Random(31)
sums = []
for d in range(12):
    os.mkdir(f"{root}/d{d}")
    for i in range(100):
        n = rng.choice([1, 100, 4095, 4096, 4097, 12000, rng.randrange(1, 40960)])
        data = (f"{d}/{i} ".encode() * (n // 6 + 1))[:n] if i % 2 else os.urandom(n)
        with open(f"{root}/d{d}/{i}", "wb") as f:
            f.write(data)
        sums.append(f"{hashlib.sha256(data).hexdigest()}  {root}/d{d}/{i}")
# Scattered blocks of one file: one run of many segments among the rest.
fd = os.open(f"{root}/scattered", os.O_CREAT | os.O_WRONLY, 0o644)
want = bytearray(4 << 20)
for b in rng.sample(range(1024), 40):
    blk = os.urandom(4096)
    os.pwrite(fd, blk, b * 4096)
    want[b * 4096:(b + 1) * 4096] = blk
os.close(fd)
os.truncate(f"{root}/scattered", 4 << 20)
sums.append(f"{hashlib.sha256(bytes(want)).hexdigest()}  {root}/scattered")
open("/tmp/grouped.sums", "w").write("\n".join(sums) + "\n")
PY
	sync
	stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats) || { echo "no mountstats line"; return 1; }
	echo "arborfs test: grouped writeback ${opts:-plain}:$stats" >/dev/kmsg
	groups=$(sed -n 's/.* wb_groups=\([0-9]*\).*/\1/p' <<<"$stats")
	((groups > 0)) || { echo "no runs of several files written as a group: $stats"; return 1; }
	umount /mnt && mount -t arborfs /dev/vdj /mnt || return 1
	sha256sum --quiet -c /tmp/grouped.sums || { echo "files read back wrong (${opts:-plain})"; return 1; }
	umount /mnt && rm -f /tmp/grouped.sums && fsck_clean vdj
}

t_grouped_writeback() {
	grouped_round "" && grouped_round compress=lz4
}

# Compressed writes: four writers on a zstd:15 mount each write 8 MiB
# (three quarters text, a quarter random) with an fsync, two of them
# O_DIRECT, while files are created. Every 128 KiB
# piece is compressed without the mount's mutex (encoded_writes), some
# while another engine call runs (overlapped_encodes); the files read back,
# take less room than their size, read back cold with every compressed
# extent decoded without the mutex (decoded_reads), fsck is clean and the
# tool's zstd decodes what the kernel's wrote.
t_compressed_writeback() {
	local stats encoded overlapped planned decoded i kib n creator writers
	mkfs vdj --data-checksum crc32c || return 1
	# A high level, so that compressing takes long enough to overlap.
	mount -t arborfs -o compress=zstd:15 /dev/vdj /mnt || return 1
	for i in 0 1 2 3; do
		python3 -c '
import random, sys
rng = random.Random(int(sys.argv[2]))
text = (b"arborfs compresses this line well %d\n" % rng.randrange(10**6)) * 2048
with open(sys.argv[1], "wb") as f:
    for i in range(128):
        f.write(rng.randbytes(65536) if i % 4 == 0 else text[:65536])
' /tmp/comp.$i $i || return 1
	done
	# A process creating files with an fsync each, from before the writers
	# start until they are done; two writers through the page cache, two
	# O_DIRECT (compressed in the caller's context).
	mkdir /mnt/meta && rm -f /tmp/comp.stop || return 1
	python3 -c '
import os, sys
i = 0
while i < 20 or not os.path.exists("/tmp/comp.stop"):
    fd = os.open(f"{sys.argv[1]}/meta/{i}", os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"x" * 100)
    os.fsync(fd)
    os.close(fd)
    i += 1
' /mnt &
	creator=$!
	until [[ -e /mnt/meta/5 ]]; do sleep 0.1; done
	writers=()
	for i in 0 1 2 3; do
		if ((i < 2)); then
			dd if=/tmp/comp.$i of=/mnt/f$i bs=1M conv=fsync status=none &
		else
			dd if=/tmp/comp.$i of=/mnt/f$i bs=1M oflag=direct conv=fsync status=none &
		fi
		writers+=($!)
	done
	for i in "${writers[@]}"; do wait "$i" || { echo "a writer failed"; return 1; }; done
	touch /tmp/comp.stop && wait $creator || return 1
	n=$(ls /mnt/meta | wc -l)
	[[ -e /mnt/meta/$((n - 1)) ]] || { echo "created files lost"; return 1; }
	stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats) || { echo "no mountstats line"; return 1; }
	echo "arborfs test: compressed writeback ($(nproc) CPUs, $n files created):$stats" >/dev/kmsg
	planned=$(sed -n 's/.* planned_writes=\([0-9]*\).*/\1/p' <<<"$stats")
	encoded=$(sed -n 's/.* encoded_writes=\([0-9]*\).*/\1/p' <<<"$stats")
	overlapped=$(sed -n 's/.* overlapped_encodes=\([0-9]*\).*/\1/p' <<<"$stats")
	# 32 MiB in 128 KiB pieces: 256, less what a partial run leaves to the engine.
	((encoded >= 200 && planned >= encoded)) || { echo "pieces not compressed outside the mutex: $stats"; return 1; }
	((overlapped > 0)) || { echo "no compression overlapped another engine call: $stats"; return 1; }
	sync && echo 3 >/proc/sys/vm/drop_caches
	for i in 0 1 2 3; do
		cmp /tmp/comp.$i /mnt/f$i || { echo "f$i read back wrong"; return 1; }
		kib=$(du -k /mnt/f$i | cut -f1)
		((kib < 8192 / 2)) || { echo "f$i: ${kib} KiB allocated for 8 MiB of mostly text"; return 1; }
	done
	# Read back cold: the compressed extents were decoded without the mutex.
	stats=$(grep ' on /mnt with fstype arborfs' /proc/self/mountstats)
	decoded=$(sed -n 's/.* decoded_reads=\([0-9]*\).*/\1/p' <<<"$stats")
	((decoded >= 200)) || { echo "compressed extents not decoded outside the mutex: $stats"; return 1; }
	fsck_clean vdj || return 1
	"$ARBORFS" restore /dev/vdj /tmp/restored >/dev/null || return 1
	for i in 0 1 2 3; do
		cmp /tmp/comp.$i /tmp/restored/f$i || { echo "the tool reads f$i wrong"; return 1; }
	done
	rm -rf /tmp/restored /tmp/comp.*
}

# A tree written through the kernel, read back on the host by `arborfs restore` (run-tests.sh).
t_kernel_writes_tree() {
	mkfs vdl || return 1
	# The kernel's zstd writes it; the tools' zstd crate reads it back on the host.
	mount -t arborfs -o compress=zstd:5 /dev/vdl /mnt || return 1
	cp -a "$TREE/." /mnt/ || return 1
	# trusted.* does not cross 9p; set it here as make-tree.sh does on the host.
	setfattr -n trusted.md5 -v 0x0123456789abcdef /mnt/random.bin || return 1
	python3 "$HERE/compare-tree.py" --xattr-prefix user. "$TREE" /mnt || return 1
	umount /mnt && fsck_clean vdl
}

# A tool-made image, changed through the kernel and still clean.
t_tool_image_rw() {
	mount -t arborfs /dev/vda /mnt || return 1
	python3 "$HERE/compare-tree.py" --xattr-prefix user. "$TREE" /mnt || return 1
	rm -rf /mnt/a && mkdir /mnt/new && cp /mnt/text.txt /mnt/new/ || return 1
	umount /mnt && fsck_clean vda
}

# The kernel's 1 MiB writeback runs are stored as 1 MiB extents with one
# checksum per 32 KiB chunk; a damaged chunk fails only the reads that touch
# it (the readahead window around it falls back to folio-sized reads).
t_chunk_checksums() {
	local ino out at from to
	mkfs vdj || return 1
	mount -t arborfs /dev/vdj /mnt || return 1
	head -c 8M /dev/urandom >/tmp/chunks.bin && cp /tmp/chunks.bin /mnt/chunks || return 1
	ino=$(stat -c %i /mnt/chunks) && umount /mnt || return 1
	# Prints the device offset of file byte 2 MiB + 165000 and the file
	# range [from, to) of the chunk that holds it.
	out=$("$ARBORFS" dump --btree extents --json /dev/vdj | python3 -c '
import json, sys
ino, want = int(sys.argv[1]), (2 << 20) + 165000
ext = [k for k in map(json.loads, sys.stdin) if k.get("type") == "extent" and k["inode"] == ino]
assert sum(k["live_len"] for k in ext) == 8 << 20 and len(ext) <= 16, [(k["offset"], k["live_len"]) for k in ext]
assert any(k["live_len"] == 1 << 20 for k in ext), "no 1 MiB extent"
for k in ext:
    assert k["chunk_bytes"] == 32768 and len(k["chunk_csums"]) == -(-k["payload_len"] // 32768), k
k = [k for k in ext if k["offset"] - k["live_len"] <= want < k["offset"]][0]
start = k["offset"] - k["live_len"]
in_payload = k["offset_into"] + want - start
first = in_payload // 32768 * 32768 - k["offset_into"] + start
print(k["ptrs"][0]["offset"] + in_payload, max(first, start), min(first + 32768, k["offset"]))
' "$ino") || return 1
	read -r at from to <<<"$out"
	python3 -c '
import os, sys
fd = os.open("/dev/vdj", os.O_RDWR)
b = os.pread(fd, 1, int(sys.argv[1]))
os.pwrite(fd, bytes([b[0] ^ 0x55]), int(sys.argv[1]))
os.fsync(fd)
' "$at" || return 1
	echo 3 >/proc/sys/vm/drop_caches
	mount -t arborfs -o ro /dev/vdj /mnt || return 1
	# The damaged chunk fails; everything around it reads, through the
	# readahead windows that include it.
	must_fail dd if=/mnt/chunks of=/dev/null bs=4k skip=$(((2 * 1048576 + 165000) / 4096)) count=1 status=none ||
		{ echo "a damaged chunk was read"; return 1; }
	log_has "read of inode $ino" || return 1
	dd if=/mnt/chunks of=/tmp/chunks.front bs=4k count=$((from / 4096)) status=none || return 1
	dd if=/mnt/chunks of=/tmp/chunks.back bs=4k skip=$((to / 4096)) status=none || return 1
	cmp -n "$from" /tmp/chunks.front /tmp/chunks.bin || return 1
	tail -c +$((to + 1)) /tmp/chunks.bin | cmp /tmp/chunks.back - || return 1
	[[ $(stat -c %s /tmp/chunks.front) == "$from" && $(stat -c %s /tmp/chunks.back) == $((8388608 - to)) ]] ||
		{ echo "short reads around the damage"; return 1; }
	echo "arborfs test: chunk checksums: damage at file bytes [$from, $to) fails only there" >/dev/kmsg
	umount /mnt && rm -f /tmp/chunks.bin /tmp/chunks.front /tmp/chunks.back
}

RW_TESTS=(posix_ops fsync_times partial_tails large_folios posix_ops_compressed compress_option remount tools_on_mounted discard fstrim swapfile small_blocks copy_range readahead freeze shutdown orphan_after_crash enospc enospc_metadata fio_verify stress_ng concurrency
	kernel_writes_tree tool_image_rw fs_features fs_features_compressed norecovery chunk_checksums concurrent_reads group_commit grouped_writeback compressed_writeback direct_reads acl_option)
