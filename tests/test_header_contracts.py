#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every public function has its contract comment: each function declared
in include/corio/*.h must follow a comment, directly or as one of a group
of declarations that a comment heads with no blank line between them (the
typed accessors share one).  Then, when doxygen is installed, the API
reference (`make docs`: docs/Doxyfile) is generated into a temporary
directory with no warning, and every function's contract is in it.
Prints each failure and exits 1; prints the counts and exits 0 otherwise.
Macros and types are not checked (a type's fields carry their own
comments)."""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INCLUDE = os.path.join(ROOT, "include", "corio")

# A declaration's first line: a return type, then corio_<name>( , at column 0.
DECL = re.compile(r"^(?:const\s+)?(?:struct\s+|enum\s+)?\w[\w\s\*]*?\b(corio_\w+)\s*\(")


def main():
    missing, count, names = [], 0, []
    for name in sorted(os.listdir(INCLUDE)):
        if not name.endswith(".h"):
            continue
        lines = open(os.path.join(INCLUDE, name), encoding="utf-8").read().split("\n")
        in_comment = False
        for i, line in enumerate(lines):
            stripped = line.strip()
            if in_comment:
                if "*/" in stripped:
                    in_comment = False
                continue
            if stripped.startswith("/*") and "*/" not in stripped:
                in_comment = True
                continue
            m = DECL.match(line)
            if not m or line.startswith(("#", " ", "\t", "typedef")) or line.rstrip().endswith("{"):
                continue
            count += 1
            names.append(m.group(1))
            # Walk up: over the lines of earlier declarations (and their
            # continuations), to a comment's end; a blank line first means
            # no comment heads this one.
            j = i - 1
            ok = False
            while j >= 0:
                prev = lines[j].rstrip()
                if prev.endswith("*/"):
                    ok = True
                    break
                if not prev.strip() or (prev.startswith("#") and not prev.startswith("#define")):
                    break
                j -= 1
            if not ok:
                missing.append("include/corio/%s:%d: %s has no contract comment"
                               % (name, i + 1, m.group(1)))
    for m in missing:
        print(m)
    print("%d public functions, %d without a contract comment" % (count, len(missing)))
    failed = bool(missing) or count == 0
    if shutil.which("doxygen"):
        failed |= not reference(names)
    else:
        print("SKIP the API reference: doxygen is not installed (Debian package doxygen)")
    return 1 if failed else 0


def reference(names):
    """Generates the reference as `make docs` does; True when it is whole."""
    with tempfile.TemporaryDirectory() as out:
        config = open(os.path.join(ROOT, "docs", "Doxyfile"), encoding="utf-8").read()
        config += "\nOUTPUT_DIRECTORY = %s\n" % out
        p = subprocess.run(["doxygen", "-"], input=config, text=True, cwd=ROOT,
                           capture_output=True, timeout=120)
        warnings = [l for l in (p.stdout + p.stderr).splitlines() if "warning" in l]
        for w in warnings:
            print("doxygen: " + w)
        html = ""
        for f in os.listdir(os.path.join(out, "html")):
            if f.endswith("_8h.html"):
                html += open(os.path.join(out, "html", f), encoding="utf-8").read()
        absent = [n for n in names if n not in html]
        for n in absent:
            print("the API reference lacks %s" % n)
        print("API reference: %d functions, %d warnings, %d missing"
              % (len(names), len(warnings), len(absent)))
        return p.returncode == 0 and not warnings and not absent


if __name__ == "__main__":
    sys.exit(main())
