#!/usr/bin/env python3
"""check-ffi.py: the C prototypes of the module's Rust entry points
(arborfs_rs_*, in fs/kernel/*.rs) and the Rust declarations of the C
services (arborfs_glue_*, in fs/glue/*.c) must agree on every argument and
the return type, as far as the calling convention sees them (width,
signedness, pointer or not). Nothing else checks this: a prototype that
drops or adds an argument compiles and links, and shifts every argument
after it at run time (it once made every mount fail with ENOENT).

usage: check-ffi.py [ROOT]      (exit status 1 and a line per mismatch)
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parent.parent)

# Classes of the calling convention: integer width and sign, or a pointer.
RUST_TYPES = {
    "u8": "u8", "i8": "s8", "u16": "u16", "i16": "s16", "u32": "u32", "i32": "s32", "c_int": "s32",
    "c_uint": "u32", "u64": "u64", "i64": "s64", "usize": "usize", "isize": "isize", "bool": "bool",
    "c_long": "isize", "c_ulong": "usize", "()": "void",
}
C_TYPES = {
    "u8": "u8", "s8": "s8", "char": "s8", "u16": "u16", "s16": "s16", "u32": "u32", "s32": "s32",
    "int": "s32", "unsigned int": "u32", "unsigned": "u32", "u64": "u64", "s64": "s64",
    "long long": "s64", "unsigned long long": "u64", "size_t": "usize", "ssize_t": "isize",
    "long": "isize", "unsigned long": "usize", "bool": "bool", "void": "void", "blk_opf_t": "u32",
    "gfp_t": "u32", "loff_t": "s64",
}


def rust_class(ty):
    ty = re.sub(r"^(core|kernel)::ffi::", "", ty.strip())
    if ty.startswith("*") or ty.startswith("&") or ty.startswith("Option<extern") or ty.startswith("extern"):
        return "ptr"
    return RUST_TYPES.get(ty, f"?{ty}")


def c_class(decl):
    """The class of a C parameter or return declaration (name included or not)."""
    decl = re.sub(r"\b(const|volatile|struct|enum|__user|restrict)\b", " ", decl)
    if "*" in decl or "(" in decl or "[" in decl:
        return "ptr"
    words = decl.split()
    # Drop the parameter name, if any, when what is left is still a type.
    for take in (len(words), len(words) - 1):
        ty = " ".join(words[:take])
        if ty in C_TYPES:
            return C_TYPES[ty]
    return f"?{decl.strip()}"


def split_args(s):
    """Split an argument list at top-level commas."""
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "(<[":
            depth += 1
        elif ch in ")>]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [a.strip() for a in out if a.strip()]


def rust_signatures():
    """name -> (argument classes, return class, where) from the Rust side."""
    sigs = {}
    for path in sorted((ROOT / "fs" / "kernel").glob("*.rs")) + [ROOT / "fs" / "arborfs_main.rs"]:
        text = path.read_text()
        # Which macro block a function is in decides its hidden arguments.
        blocks = []
        for m in re.finditer(r"^(entry_points|read_entry_points|change_entry_points)! \{", text, re.M):
            depth, i = 0, m.end() - 1
            while i < len(text):
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                if depth == 0:
                    break
                i += 1
            blocks.append((m.start(), i, m.group(1)))
        fn_re = r"fn (arborfs_(?:rs|glue)_\w+)\s*\(([^{;]*?)\)\s*(?:->\s*([^{;]+?))?\s*[{;]"
        for m in re.finditer(fn_re, text, re.S):
            name, args, ret = m.group(1), m.group(2), (m.group(3) or "()")
            block = next((b[2] for b in blocks if b[0] < m.start() < b[1]), None)
            parts = split_args(args)
            if block:
                # The first argument is the engine (`fs`, or the reading
                # transaction's name): a pointer; reads add `shared` and
                # `miss`, changes those and `prepared`.
                parts = parts[1:]
                hidden = {"read_entry_points": ["bool", "ptr"], "change_entry_points": ["bool", "ptr", "ptr"]}
                classes = ["ptr"] + hidden.get(block, [])
            else:
                classes = []
            classes += [rust_class(p.split(":", 1)[1]) for p in parts]
            line = text.count("\n", 0, m.start()) + 1
            sigs[name] = (classes, rust_class(ret), f"{path.relative_to(ROOT)}:{line}")
    return sigs


def c_signatures():
    """name -> (argument classes, return class, where) from the C headers and sources."""
    sigs = {}
    for path in sorted((ROOT / "fs" / "glue").glob("*.[ch]")):
        # Comments out, lines kept (for the line numbers).
        text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), path.read_text(), flags=re.S)
        proto = r"^([A-Za-z_][\w \t\*]*?[\s\*])(arborfs_(?:rs|glue)_\w+)\s*\(([^;{)]*(?:\([^)]*\)[^;{)]*)*)\)\s*([;{])"
        for m in re.finditer(proto, text, re.M):
            ret, name, args = m.group(1), m.group(2), m.group(3)
            if ret.strip().startswith(("return", "#")) or "static" in ret:
                continue
            classes = [] if args.strip() in ("", "void") else [c_class(a) for a in split_args(args)]
            line = text.count("\n", 0, m.start()) + 1
            # A definition's signature wins over a prototype's only if none was seen.
            sigs.setdefault(name, (classes, c_class(ret), f"{path.relative_to(ROOT)}:{line}"))
    return sigs


def main():
    rust, c = rust_signatures(), c_signatures()
    bad = []
    for name in sorted(set(rust) | set(c)):
        if name not in rust:
            # C-only helpers named like the services are fine unless Rust calls them.
            continue
        if name not in c:
            bad.append(f"{name}: no C prototype or definition ({rust[name][2]})")
            continue
        (ra, rr, rw), (ca, cr, cw) = rust[name], c[name]
        unknown = [x for x in ra + ca + [rr, cr] if x.startswith("?")]
        if unknown:
            bad.append(f"{name}: types the check does not know: {unknown} ({rw}, {cw})")
        elif ra != ca or rr != cr:
            bad.append(f"{name}: Rust ({', '.join(ra)}) -> {rr} at {rw}, C ({', '.join(ca)}) -> {cr} at {cw}")
    for line in bad:
        print(f"check-ffi: {line}")
    print(f"check-ffi: {len(rust)} functions checked, {len(bad)} mismatches", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
