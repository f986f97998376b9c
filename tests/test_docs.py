#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""docs/guide.md against what it shows: every ```c block that opens with
"/* docs/snippets/NAME.c" must be that file, byte for byte; every snippet
file must be in the guide; and the "Prints:" block after a program must be
what its binary (built by docs/snippets/CMakeLists.txt as snippet_NAME)
prints.  Usage: test_docs.py --bin DIR (the directory of the snippet_*
binaries)."""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDE = os.path.join(ROOT, "docs", "guide.md")
SNIPPETS = os.path.join(ROOT, "docs", "snippets")


def blocks(text):
    """(language, body, end offset) of each fenced block, in order."""
    for m in re.finditer(r"^```(\w*)\n(.*?)^```$", text, re.M | re.S):
        yield m.group(1), m.group(2), m.end()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    args = ap.parse_args()
    text = open(GUIDE, encoding="utf-8").read()
    failures = []
    shown = []
    found = list(blocks(text))
    for i, (lang, body, end) in enumerate(found):
        m = re.match(r"/\* docs/snippets/(\w+)\.c", body)
        if lang != "c" or not m:
            continue
        name = m.group(1)
        shown.append(name)
        path = os.path.join(SNIPPETS, name + ".c")
        if not os.path.exists(path):
            failures.append("%s: shown in the guide, no such file" % path)
            continue
        if open(path, encoding="utf-8").read() != body:
            failures.append("%s: the guide's copy differs from the file" % path)
        # The expected output: the next block, a text block after "Prints:".
        nxt = found[i + 1] if i + 1 < len(found) else None
        between = text[end:text.find("```", end)] if nxt else ""
        if not nxt or nxt[0] != "text" or "Prints:" not in between:
            failures.append("%s: no 'Prints:' block after it" % name)
            continue
        exe = os.path.join(args.bin, "snippet_" + name)
        try:
            p = subprocess.run([exe], capture_output=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            failures.append("%s: did not run: %s" % (exe, e))
            continue
        out = p.stdout.decode("utf-8", "replace")
        if p.returncode != 0 or out != nxt[1]:
            failures.append("%s: exit %d, printed %r, the guide says %r"
                            % (name, p.returncode, out, nxt[1]))
        else:
            print("PASS %s" % name, flush=True)
    for f in sorted(os.listdir(SNIPPETS)):
        if f.endswith(".c") and f[:-2] not in shown:
            failures.append("docs/snippets/%s: not shown in the guide" % f)
    for f in failures:
        print("FAIL " + f, flush=True)
    print("%d snippets checked, %d failures" % (len(shown), len(failures)), flush=True)
    return 1 if failures or not shown else 0


if __name__ == "__main__":
    sys.exit(main())
