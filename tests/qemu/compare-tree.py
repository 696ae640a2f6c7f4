#!/usr/bin/env python3
"""compare-tree.py [--xattr-prefix P] SRC DST: compare two trees the way a
user would notice differences: file types, contents, modes, owners, sizes,
mtimes (ns), device numbers, symlink targets, hard-link groups and extended
attributes (only those starting with P, when given: 9p hides trusted.*).
Prints each difference; exits 1 if there is any."""
import hashlib, os, stat, sys

PREFIX = ""
if sys.argv[1] == "--xattr-prefix":
    PREFIX = sys.argv[2]
    del sys.argv[1:3]

def snapshot(root):
    out, groups = {}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            e = {
                "type": stat.S_IFMT(st.st_mode), "mode": stat.S_IMODE(st.st_mode),
                "uid": st.st_uid, "gid": st.st_gid, "mtime": st.st_mtime_ns,
                "rdev": st.st_rdev if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else 0,
            }
            if stat.S_ISREG(st.st_mode):
                e["size"] = st.st_size
                h = hashlib.sha256()
                with open(p, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 20), b""):
                        h.update(chunk)
                e["sha256"] = h.hexdigest()
                e["nlink"] = st.st_nlink
                if st.st_nlink > 1:
                    e["group"] = groups.setdefault(st.st_ino, rel)
            if stat.S_ISLNK(st.st_mode):
                e["target"] = os.readlink(p)
            else:
                try:
                    e["xattrs"] = {n: os.getxattr(p, n, follow_symlinks=False) for n in sorted(os.listxattr(p, follow_symlinks=False)) if n.startswith(PREFIX)}
                except OSError as err:
                    e["xattrs"] = "error: %s" % err
            out[rel] = e
    return out

a, b = snapshot(sys.argv[1]), snapshot(sys.argv[2])
bad = 0
for k in sorted(set(a) | set(b)):
    if k not in b:
        print("missing in %s: %s" % (sys.argv[2], k)); bad += 1
    elif k not in a:
        print("extra in %s: %s" % (sys.argv[2], k)); bad += 1
    elif a[k] != b[k]:
        diffs = {f: (a[k].get(f), b[k].get(f)) for f in set(a[k]) | set(b[k]) if a[k].get(f) != b[k].get(f)}
        print("differs: %s: %s" % (k, diffs)); bad += 1
print("compare-tree: %d entries, %d differences" % (len(a), bad))
sys.exit(1 if bad else 0)
