"""out_root as a whole: the run and sweep directories in it, and its `latest` link.

`out_root/latest` is a relative symbolic link, `latest -> <run_id>`, to the run (or sweep)
started last into out_root, so that `hetbench report runs/latest` needs no id. The driver points
it when it makes the directory, before any rank starts: the link names a run that is still
running, and a run that failed is still the newest run. Ranks and sweep points never touch it.

A link to a directory is a directory to `Path.is_dir()` and "latest" sorts after the
date-stamped ids, so whatever lists out_root lists `run_dirs(out_root)`, which leaves links out.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Optional

LATEST = "latest"


def run_dirs(out_root) -> list[Path]:
    """The real directories in out_root, sorted by name: runs, sweeps and anything else a command
    made there, never the `latest` link (nor any other link). [] where out_root does not exist."""
    root = Path(out_root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink())


def point_latest(run_dir) -> Optional[str]:
    """Point `latest` beside `run_dir` (in its out_root) at it. Returns None when done, else one
    line saying why not; never raises, because a run must not fail over a convenience.

    The new link is made under a name of its own and renamed over the old one (rename is
    atomic): a reader sees the old link or the new, never none, and runs starting together in
    one out_root never collide; the last to rename wins. A `latest` that is not a link is the
    user's file or folder and is left alone; a filesystem that refuses links goes without one."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    if os.path.lexists(link) and not link.is_symlink():
        return f"{link} is not a link (a file or folder of that name is left alone), so it " \
               f"does not name this run"
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    try:
        os.symlink(run_dir.name, tmp)  # relative: the link survives moving out_root
    except OSError as err:
        return f"no {link} link to this run: this filesystem refused a symbolic link ({_why(err)})"
    try:
        os.replace(tmp, link)
    except OSError as err:  # e.g. a folder named latest appeared meanwhile
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return f"no {link} link to this run: {_why(err)}"
    return None


def _why(err: OSError) -> str:
    return err.strerror or type(err).__name__
