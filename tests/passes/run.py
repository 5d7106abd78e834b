"""Runs the pass tests (tests/passes/test_*.py) against a tacoc binary."""

import argparse
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import passlib  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tacoc", required=True)
    ap.add_argument("-k", help="only modules whose name contains this")
    a = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    passed = failed = 0
    for f in sorted(os.listdir(here)):
        if not (f.startswith("test_") and f.endswith(".py")) or (a.k and a.k not in f):
            continue
        p, fl = passlib.run_module(importlib.import_module(f[:-3]), a.tacoc)
        passed += p
        failed += fl
    print(f"passes: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
