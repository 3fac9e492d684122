"""Print the installed version of every package pinned in a constraints file and fail on any that
differs from its pin: `make test-min` must test the floors, not whatever pip happened to choose.

Usage: python scripts/min_versions.py constraints/min.txt
"""
from __future__ import annotations

import sys
from importlib import metadata

from packaging.requirements import Requirement


def pins(path: str) -> list[Requirement]:
    """The `name==version` lines of the file whose marker holds on this Python."""
    out = []
    for line in open(path, encoding="utf-8"):
        text = line.split("#", 1)[0].strip()
        if text:
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate():
                out.append(req)
    return out


def main(path: str) -> int:
    wrong = []
    print(f"Python {sys.version.split()[0]}")
    for req in pins(path):
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            have = "missing"
        ok = have != "missing" and req.specifier.contains(have, prereleases=True)
        print(f"  {req.name:26} {have:14} {'' if ok else 'NOT ' + str(req.specifier)}".rstrip())
        if not ok:
            wrong.append(req.name)
    sys.stdout.flush()  # the table first, then the verdict on stderr
    if wrong:
        print(f"not at the floor: {', '.join(wrong)}", file=sys.stderr)
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
