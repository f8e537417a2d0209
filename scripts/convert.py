#!/usr/bin/env python3
"""seedx.c converter: official checkpoints -> GGUF containers.

    python scripts/convert.py COMPONENT ARGS...

Each component lives in scripts/convert_<component>.py and defines
`add_args(parser)` and `run(args)`. Run `python scripts/convert.py -h` for the list.
"""
import argparse
import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def components():
    return sorted(f[len("convert_"):-3] for f in os.listdir(HERE)
                  if f.startswith("convert_") and f.endswith(".py"))


def main(argv=None):
    p = argparse.ArgumentParser(prog="convert.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="component", required=True)
    mods = {}
    for c in components():
        m = importlib.import_module("convert_" + c)
        sp = sub.add_parser(c, help=(m.__doc__ or "").strip().split("\n")[0])
        m.add_args(sp)
        mods[c] = m
    args = p.parse_args(argv)
    try:
        mods[args.component].run(args)
    except (OSError, ValueError, KeyError) as e:
        print(f"convert.py {args.component}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
