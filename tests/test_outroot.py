"""out_root/latest (bench.results.outroot): a relative link to the newest run, replaced
atomically, never over a user's own file, and left out of every listing of out_root."""
from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest

from bench.driver import run as driver_run
from bench.results import outroot
from bench.results.outroot import point_latest, run_dirs


def _runs(root: Path, *names: str) -> list[Path]:
    dirs = [root / name for name in names]
    for d in dirs:
        d.mkdir(parents=True)
    return dirs


def _leftovers(root: Path) -> list[str]:
    return [p.name for p in root.iterdir() if p.name.endswith(".tmp")]


def test_the_link_is_relative_and_follows_the_newest_run(tmp_path):
    first, second = _runs(tmp_path / "runs", "20240101-000000-aaaa", "20240101-000001-bbbb")
    assert point_latest(first) is None
    link = tmp_path / "runs" / "latest"
    assert os.readlink(link) == first.name  # relative: a moved out_root keeps a good link
    assert point_latest(second) is None
    assert os.readlink(link) == second.name and link.resolve() == second.resolve()
    moved = tmp_path / "moved"
    (tmp_path / "runs").rename(moved)
    assert (moved / "latest").resolve() == (moved / second.name).resolve()
    assert _leftovers(moved) == []


def test_readers_never_see_the_link_missing_while_it_is_replaced(tmp_path):
    a, b = _runs(tmp_path, "a", "b")
    point_latest(a)
    missing, done = [], threading.Event()

    def read():
        while not done.is_set():
            try:
                os.readlink(tmp_path / "latest")
            except FileNotFoundError:
                missing.append(1)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(2000):
            point_latest(b if i % 2 else a)
    finally:
        done.set()
        reader.join()
    assert missing == []
    assert _leftovers(tmp_path) == []


def test_runs_starting_together_do_not_collide_and_one_of_them_wins(tmp_path):
    dirs = _runs(tmp_path, *(f"run{i}" for i in range(8)))
    notices, start = [], threading.Barrier(len(dirs))

    def start_run(d):
        start.wait()
        for _ in range(20):
            notices.append(point_latest(d))

    threads = [threading.Thread(target=start_run, args=(d,)) for d in dirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert notices == [None] * 20 * len(dirs)
    assert os.readlink(tmp_path / "latest") in {d.name for d in dirs}
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_a_latest_that_is_not_a_link_is_left_alone_with_a_notice(tmp_path, kind):
    (run,) = _runs(tmp_path, "r1")
    mine = tmp_path / "latest"
    if kind == "file":
        mine.write_text("my notes\n")
    else:
        mine.mkdir()
        (mine / "keep.txt").write_text("x")
    notice = point_latest(run)
    assert notice and str(mine) in notice and "left alone" in notice and "\n" not in notice
    assert not mine.is_symlink()
    if kind == "file":
        assert mine.read_text() == "my notes\n"
    else:
        assert [p.name for p in mine.iterdir()] == ["keep.txt"]
    assert _leftovers(tmp_path) == []


def test_a_filesystem_that_refuses_links_goes_without_one(tmp_path, monkeypatch):
    (run,) = _runs(tmp_path, "r1")

    def refuse(src, dst, *a, **k):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(outroot.os, "symlink", refuse)
    notice = point_latest(run)
    assert notice and "refused a symbolic link" in notice and "Operation not permitted" in notice
    assert not os.path.lexists(tmp_path / "latest") and _leftovers(tmp_path) == []


def test_run_dirs_lists_real_directories_only(tmp_path):
    runs = _runs(tmp_path, "20240101-000000-aaaa", "20240102-000000-bbbb")
    (tmp_path / "notes.txt").write_text("x")
    point_latest(runs[0])
    os.symlink(runs[1].name, tmp_path / ".latest.1.ab.tmp")  # a run's link, mid-replace
    assert run_dirs(tmp_path) == runs
    assert run_dirs(tmp_path / "nowhere") == []


def test_the_driver_points_the_link_before_the_ranks_start(tmp_path, monkeypatch, capsys):
    """While the run runs, `latest` already names it; a run that failed is still the newest."""
    seen = []

    def launch(cfg, overrides, run_dir, run_id):
        seen.append((tmp_path / "latest").resolve() == run_dir.resolve())
        return 1

    monkeypatch.setattr(driver_run, "launch", launch)
    (old,) = _runs(tmp_path, "old")
    point_latest(old)
    rc = driver_run.run_one([f"out_root={tmp_path}", "run_id=new", "cluster=h100x2", "logger=none"])
    assert rc == 1 and seen == [True]
    assert os.readlink(tmp_path / "latest") == "new"
    assert "note:" not in capsys.readouterr().out


def test_the_driver_says_in_one_line_why_there_is_no_link(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(driver_run, "launch", lambda *a, **k: 0)
    (tmp_path / "latest").mkdir()
    driver_run.run_one([f"out_root={tmp_path}", "run_id=new", "cluster=h100x2", "logger=none"])
    notes = [line for line in capsys.readouterr().out.splitlines() if "note:" in line]
    assert len(notes) == 1 and notes[0].startswith("hetbench: note: ") and "left alone" in notes[0]
    assert str(tmp_path / "latest") in notes[0]
