#!/usr/bin/env python3
"""Compare a seedx.c trace with a PyTorch reference trace, module by module.

A trace is a directory of <module.path>.npy float32 arrays (PyTorch shape
order). seedx.c writes one when SEEDX_TRACE=DIR is set (or --trace DIR is
given to a command), plus DIR/trace_order.txt listing modules in the order
they ran. The PyTorch side writes the same names with forward hooks
(scripts/ref_<component>.py ... --trace-out DIR).

    python scripts/compare.py C_TRACE_DIR REF_TRACE_DIR [--tol 1e-4]
    python scripts/compare.py --run-c "SEEDX_TRACE={c} ./seedx ..." \\
                              --run-ref ".venv/bin/python scripts/ref_vit.py ... --trace-out {ref}"

Prints, per module: shape, max-abs error, max-rel error (max|c-ref| / max|ref|),
and names the first module whose max-rel exceeds --tol (where drift starts).
Exit status: 0 if every common module is within --tol, 1 otherwise.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np


def order_of(d):
    p = os.path.join(d, "trace_order.txt")
    names = []
    if os.path.exists(p):
        for line in open(p):
            n = line.strip()
            if n and n not in names:
                names.append(n)
    for f in sorted(os.listdir(d)):
        if f.endswith(".npy") and f[:-4] not in names:
            names.append(f[:-4])
    return names


def compare(cdir, rdir, tol):
    names = order_of(cdir)
    first_bad, worst, n = None, 0.0, 0
    print(f"{'module':48s} {'shape':>18s} {'max_abs':>10s} {'max_rel':>10s}")
    for name in names:
        rp = os.path.join(rdir, name + ".npy")
        cp = os.path.join(cdir, name + ".npy")
        if not os.path.exists(rp) or not os.path.exists(cp):
            print(f"{name:48s} {'(no reference)':>18s}")
            continue
        c, r = np.load(cp).astype(np.float64), np.load(rp).astype(np.float64)
        if c.size != r.size:
            print(f"{name:48s} shape mismatch: C {c.shape} vs ref {r.shape}")
            first_bad = first_bad or name
            continue
        c = c.reshape(r.shape)
        d = np.abs(c - r)
        ma = float(d.max()) if d.size else 0.0
        ref = float(np.abs(r).max()) if r.size else 0.0
        mr = ma / ref if ref > 0 else ma
        if not np.all(np.isfinite(c)):
            mr = float("inf")
        n += 1
        worst = max(worst, mr)
        flag = "" if mr <= tol else "  <-- over tolerance"
        print(f"{name:48s} {str(tuple(r.shape)):>18s} {ma:10.3g} {mr:10.3g}{flag}")
        if mr > tol and first_bad is None:
            first_bad = name
    print(f"\n{n} modules compared; worst max_rel {worst:.3g}")
    if first_bad:
        print(f"first module over {tol:g}: {first_bad}")
        return 1
    print(f"all within {tol:g}")
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("c_dir", nargs="?")
    ap.add_argument("ref_dir", nargs="?")
    ap.add_argument("--tol", type=float, default=1e-4)
    ap.add_argument("--run-c", help="shell command producing the C trace; {c} is replaced by its dir")
    ap.add_argument("--run-ref", help="shell command producing the reference trace; {ref} is replaced")
    a = ap.parse_args()
    cdir = a.c_dir or tempfile.mkdtemp(prefix="seedx_c_")
    rdir = a.ref_dir or tempfile.mkdtemp(prefix="seedx_ref_")
    if a.run_c:
        subprocess.run(a.run_c.format(c=cdir, ref=rdir), shell=True, check=True)
    if a.run_ref:
        subprocess.run(a.run_ref.format(c=cdir, ref=rdir), shell=True, check=True)
    if not (os.path.isdir(cdir) and os.path.isdir(rdir)):
        ap.error("need two trace directories (or --run-c/--run-ref)")
    return compare(cdir, rdir, a.tol)


if __name__ == "__main__":
    sys.exit(main())
