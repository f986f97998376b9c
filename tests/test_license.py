#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The licence: LICENSE holds the MIT licence, and every tracked source
file says so in an SPDX line (SPDX-License-Identifier: MIT) among its first
three lines (after a shebang).  Left out: prose (*.md, LICENSE itself),
images (*.svg, drawn by bench/chart.sh) and
docs/snippets/*.c, which docs/guide.md shows as they are (the repository's
licence covers them), and the fuzz corpora (tests/fuzz/corpus/: inputs, byte
for byte).  Prints each file without the line and exits 1, or
the count and 0.  `--fix` adds the line where it is missing, in the
comment syntax of the file's kind."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TAG = "SPDX-License-Identifier: MIT"

# The comment each kind of file takes, by suffix or by name.
C_STYLE = (".c", ".h", ".S", ".map")
HASH_STYLE = (".py", ".sh", ".txt", ".cmake", ".in", ".yaml", ".yml", ".socket", ".service",
              ".gitignore", ".clang-format", ".clang-tidy", ".dat", ".dict", ".tsv")
HASH_NAMES = ("Dockerfile", "Makefile", "Doxyfile", "run")


def comment(path):
    name = os.path.basename(path)
    if name.endswith(C_STYLE):
        return "/* %s */" % TAG
    if name.endswith((".go", ".js")):
        return "// %s" % TAG
    if name.endswith(".lua"):
        return "-- %s" % TAG
    if name.endswith(HASH_STYLE) or name in HASH_NAMES:
        return "# %s" % TAG
    return None


def exempt(path):
    return (path.endswith((".md", ".svg")) or path == "LICENSE"
            or path.startswith("docs/snippets/") and path.endswith(".c")
            or path.startswith("tests/fuzz/corpus/"))


def main():
    fix = "--fix" in sys.argv[1:]
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    problems, checked = [], 0
    lic = open(os.path.join(ROOT, "LICENSE"), encoding="utf-8").read()
    if not lic.startswith("MIT License") or "Permission is hereby granted" not in lic:
        problems.append("LICENSE: not the MIT licence")
    for path in files:
        full = os.path.join(ROOT, path)
        if exempt(path) or not os.path.isfile(full):
            continue
        style = comment(path)
        if style is None:
            problems.append("%s: a kind of file this check does not know" % path)
            continue
        checked += 1
        lines = open(full, encoding="utf-8").read().split("\n")
        if any(TAG in l for l in lines[:3]):
            continue
        if not fix:
            problems.append("%s: no '%s' line" % (path, TAG))
            continue
        at = 1 if lines and lines[0].startswith("#!") else 0
        lines.insert(at, style)
        with open(full, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    for p in problems:
        print(p)
    print("%d source files, %d problems" % (checked, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
