#!/usr/bin/python3
"""Checks every quoted #include in the tree against the layers of
docs/ARCHITECTURE.md: a part includes only itself and the parts below it,
a few files (FILE_RULES) only some headers of their own part, and a few
headers (PRIVATE) are included only by the files they serve.

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
    # wire: the PROXY v2 header on the REST responder's listener only.
    "solver-api": {"common", "wire", "store", "stats"},
    "cmd": {"common", "wire", "store", "stats", "proxy", "solver-api"},
}
# Files held to less of their own part than the rest of it: file -> (the
# headers of its own part it may include, why). The I/O backends know a
# connection only through the contract in proxy/io.h, never proxy/conn.h;
# the headers they include are held to it too, so that nothing reaches
# them second-hand.
BACKEND = "an I/O backend knows connections only through proxy/io.h"
FILE_RULES = {
    "proxy/uring.c": ({"proxy/io.h", "proxy/worker.h"}, BACKEND),
    "proxy/epoll.c": ({"proxy/io.h", "proxy/worker.h"}, BACKEND),
    "proxy/worker.h": ({"proxy/io.h"}, "the I/O backends include it"),
    "proxy/io.h": (set(), "the I/O backends include it"),
}
# Headers private to some files of their part: header -> (the files that
# may include it, why). Held everywhere, tests included.
CLUSTER = "cluster mode's state is its own; the rest sees solver-api/cluster.h"
PRIVATE = {
    "solver-api/cluster_int.h": ({"solver-api/cluster.c",
                                  "solver-api/cluster_hits.c",
                                  "solver-api/cluster_metrics.c",
                                  "solver-api/cluster_redis.c",
                                  "solver-api/cluster_sync.c",
                                  "solver-api/cluster_write.c"}, CLUSTER),
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
                elif inc in PRIVATE and rel not in PRIVATE[inc][0]:
                    bad.append(f"{where}: only "
                               f"{', '.join(sorted(PRIVATE[inc][0]))} "
                               f"may include it ({PRIVATE[inc][1]})")
                elif rel.startswith(TEST_DIRS):
                    continue
                elif target != part and target not in ALLOWED[part]:
                    bad.append(f"{where}: {part} may not include {target}")
                elif target == part and rel in FILE_RULES and \
                        inc not in FILE_RULES[rel][0]:
                    allowed, why = FILE_RULES[rel]
                    only = ", ".join(sorted(allowed)) or "nothing"
                    bad.append(f"{where}: {rel} may include of {part} only "
                               f"{only} ({why})")
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
