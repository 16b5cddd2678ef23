#!/usr/bin/python3
"""Checks every quoted #include in the tree against the layers of
docs/ARCHITECTURE.md: a part includes only itself and the parts below it.

The build enforces the same rule through include paths (a part reaches
another's headers only by linking its library); this check covers what a
path cannot: an include that climbs out with "..", a bare name that would
resolve only by accident, and a library that grows a dependency without
the architecture saying so.

usage: check_includes.py SOURCE_DIR      exit 1 with one line per violation
"""
import os
import re
import sys

# part -> the parts it may include (itself always). Keep in step with the
# table in docs/ARCHITECTURE.md.
ALLOWED = {
    "common": set(),
    "wire": {"common"},
    "store": {"common"},
    "stats": {"common"},
    "proxy": {"common", "wire", "store", "stats"},
    "solver-api": {"common", "store", "stats"},
    "cmd": {"common", "wire", "store", "stats", "proxy", "solver-api"},
}
# Tests may include any part, and headers beside them by bare name.
TEST_DIRS = ("tests/",)
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def sources(top):
    for part in sorted(ALLOWED) + ["tests"]:
        for root, dirs, files in os.walk(os.path.join(top, part)):
            dirs[:] = [d for d in dirs if d != "corpus"]
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(root, f), top)


def check(top):
    bad = []
    for rel in sources(top):
        part = rel.split("/", 1)[0]
        with open(os.path.join(top, rel), encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                m = INCLUDE.match(line)
                if not m:
                    continue
                inc = m.group(1)
                where = f"{rel}:{lineno}: \"{inc}\""
                if ".." in inc.split("/"):
                    bad.append(f"{where}: climbs out of its folder")
                    continue
                if "/" not in inc:
                    here = os.path.join(top, os.path.dirname(rel), inc)
                    if not (rel.startswith(TEST_DIRS) and os.path.exists(here)):
                        bad.append(f"{where}: name the part (\"<part>/{inc}\")")
                    continue
                target = inc.split("/", 1)[0]
                if target not in ALLOWED:
                    bad.append(f"{where}: no part named {target}")
                elif not os.path.exists(os.path.join(top, inc)):
                    bad.append(f"{where}: no such header")
                elif rel.startswith(TEST_DIRS):
                    continue
                elif target != part and target not in ALLOWED[part]:
                    bad.append(f"{where}: {part} may not include {target}")
    return bad


def main():
    top = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                          os.path.join(os.path.dirname(__file__), "..", ".."))
    bad = check(top)
    for b in bad:
        print(b)
    if bad:
        print(f"check_includes: {len(bad)} include(s) cross the layers")
        return 1
    print("check_includes: every include keeps to the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
