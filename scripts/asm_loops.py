#!/usr/bin/env python3
"""Innermost loops of an AArch64 object file, with their instructions counted
by kind: what the README's ARM table is read from.

    python3 scripts/asm_loops.py build-aarch64/ops_neon.o [--show FUNC:ADDR]

A loop is a backward branch whose body holds no other backward branch. Per
loop: instructions, FMLA/FMLS, load instructions and the 16-byte registers
they fill, stores, references to the stack (spills), conversions
(FCVTL/SHLL), the rest. --show prints one loop's instructions.
"""
import re
import shutil
import subprocess
import sys


def disassemble(obj):
    tool = shutil.which("aarch64-linux-gnu-objdump") or "objdump"
    out = subprocess.run([tool, "-d", "--no-show-raw-insn", obj], capture_output=True, text=True,
                         check=True).stdout
    insns, fn = [], None
    for line in out.splitlines():
        m = re.match(r"^[0-9a-f]+ <([\w.]+)>:", line)
        if m:
            fn = m.group(1)
            continue
        m = re.match(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if m:
            insns.append((fn, int(m.group(1), 16), m.group(2), m.group(3)))
    return insns


def innermost_loops(insns):
    index = {addr: i for i, (_, addr, _, _) in enumerate(insns)}
    loops = []
    for i, (_, addr, op, args) in enumerate(insns):
        if op.startswith("b.") or op in ("b", "cbz", "cbnz", "tbz", "tbnz"):
            t = re.search(r"([0-9a-f]+) <", args)
            if t and int(t.group(1), 16) < addr and int(t.group(1), 16) in index:
                loops.append((index[int(t.group(1), 16)], i))
    return [(s, e) for (s, e) in loops
            if not any(s <= s2 and e2 <= e and (s2, e2) != (s, e) for (s2, e2) in loops)]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    insns = disassemble(sys.argv[1])
    show = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--show" else None
    for s, e in innermost_loops(insns):
        body = insns[s:e + 1]
        name = f"{body[0][0]}:{body[0][1]:x}"
        if show:
            if show == name:
                print("\n".join(f"{a:6x}  {op} {args}" for _, a, op, args in body))
            continue
        ops = [b[2] for b in body]
        fma = sum(o in ("fmla", "fmls") for o in ops)
        loads = [b for b in body if b[2].startswith("ld")]
        qregs = sum((2 if b[2].startswith("ldp") else 1) for b in loads if re.match(r"q\d", b[3]))
        stores = sum(o.startswith("st") for o in ops)
        spills = sum(bool(re.search(r"\bsp\b", b[3])) for b in body)
        cvt = sum(o in ("fcvtl", "fcvtl2", "shll", "shll2") for o in ops)
        other = len(body) - fma - len(loads) - stores - cvt
        print(f"{name:18} {len(body):3} insns  fmla {fma:2}  loads {len(loads):2} ({qregs:2} x 16 B)  "
              f"stores {stores}  stack {spills}  cvt {cvt:2}  other {other}")


if __name__ == "__main__":
    main()
