#!/usr/bin/env python3
"""Regenerates every fixture under tests/fixtures/ by running each
scripts/fixtures_<component>.py in turn (all deterministic, fixed seeds).
    .venv/bin/python scripts/make_fixtures.py [component ...]"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def main():
    want = sys.argv[1:]
    scripts = sorted(f for f in os.listdir(HERE) if f.startswith("fixtures_") and f.endswith(".py"))
    for s in scripts:
        comp = s[len("fixtures_"):-3]
        if want and comp not in want:
            continue
        print(f"== fixtures: {comp}", flush=True)
        r = subprocess.run([sys.executable, os.path.join(HERE, s)], cwd=ROOT)
        if r.returncode != 0:
            print(f"fixtures_{comp}.py failed ({r.returncode})", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
