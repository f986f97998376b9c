#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Doxygen's input filter for corio's headers: their contract comments are
plain C comments (/* ... */) at column 0 above each declaration; this makes
each a Doxygen comment shown verbatim (return-code tables keep their
layout), and the file's first one its @file description.  Prints the
filtered file on stdout (Doxygen's INPUT_FILTER protocol); the line count
is kept, so Doxygen's line numbers stay right."""
import os
import sys

out = []
first = True
comment = None  # the lines of a column-0 comment being read
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        if "SPDX-License-Identifier" in line:  # the licence line: not documentation
            out.append(line)
            continue
        if comment is None and line.startswith("/*") and not line.startswith("/**"):
            comment = [line]
        elif comment is not None:
            comment.append(line)
        else:
            out.append(line)
            continue
        if "*/" not in line:
            continue
        text = "".join(comment)
        body = text[2:text.rindex("*/")]
        lines = [l[3:] if l.startswith(" * ") else l.lstrip(" *") for l in body.split("\n")]
        head = "@file %s " % os.path.basename(sys.argv[1]) if first else ""
        first = False
        # Same number of lines: the markers share the first and last line.
        lines[0] = "/** " + head + "@verbatim " + lines[0]
        lines[-1] = lines[-1] + " @endverbatim */"
        out.append("\n".join(lines) + "\n")
        comment = None
sys.stdout.write("".join(out))
