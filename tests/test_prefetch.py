"""Batches drawn ahead in a worker process: the same batches, in the same order, the same
losses as drawing them in the step."""
from __future__ import annotations

import pytest
import torch

from bench.rank.data import Batches, MarkovLanguage
from bench.rank.prefetch import Prefetcher, enabled
from tests.conftest import read_records, run_hetbench


@pytest.fixture(scope="module")
def language():
    return MarkovLanguage(64, 4, seed=3)


def _same(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def test_prefetched_batches_equal_drawn_ones_in_order(language):
    direct = Batches(language, 0, rank=1, micro_batch=3, seq_len=12, device=torch.device("cpu"))
    ahead = Prefetcher(Batches(language, 0, 1, 3, 12, torch.device("cpu")), pin=False)
    try:
        for step in range(12):
            assert _same(ahead.batch(step), direct.batch(step)), step
        assert set(ahead.pending) == {12, 13, 14, 15}  # the next four are on their way
    finally:
        ahead.close()


def test_out_of_order_steps_are_drawn_on_the_spot_and_prefetching_restarts(language):
    """A benchmark that replays steps (bench overhead) asks for earlier steps again."""
    direct = Batches(language, 0, 0, 2, 8, torch.device("cpu"), offset=3, uniform=4)
    ahead = Prefetcher(Batches(language, 0, 0, 2, 8, torch.device("cpu"), offset=3, uniform=4),
                       pin=False)
    try:
        for step in (0, 1, 2, 0, 1, 7, 8, 3):
            assert _same(ahead.batch(step), direct.batch(step)), step
    finally:
        ahead.close()


def test_a_dead_worker_falls_back_to_drawing_in_the_step(language, capsys):
    direct = Batches(language, 0, 0, 2, 8, torch.device("cpu"))
    ahead = Prefetcher(Batches(language, 0, 0, 2, 8, torch.device("cpu")), pin=False)
    ahead.batch(0)
    for proc in list(ahead.pool._processes.values()):
        proc.kill()
    try:
        for step in range(1, 5):
            assert _same(ahead.batch(step), direct.batch(step))
        assert ahead.broken and "prefetching stopped" in capsys.readouterr().err
    finally:
        ahead.close()


def test_auto_prefetches_on_cuda_only():
    assert enabled("auto", "cuda") and not enabled("auto", "cpu")
    assert enabled("on", "cpu") and not enabled("off", "cuda")


@pytest.mark.slow
def test_a_run_with_prefetch_trains_the_same_losses(tmp_path):
    losses = {}
    for mode in ("off", "on"):
        rc, run_dir, out = run_hetbench(tmp_path / mode, f"train.prefetch={mode}",
                                        "cluster.groups=[{device:H100,count:2}]", "train.steps=12",
                                        "train.warmup_steps=2", "emulation.compute=off",
                                        "emulation.network=off")
        assert rc == 0, out
        losses[mode] = [(r["step"], r["rank"], r["loss"]) for r in
                        sorted(read_records(run_dir), key=lambda r: (r["step"], r["rank"]))]
    assert losses["on"] == losses["off"]
    assert len(losses["on"]) == 24 and len({v for *_, v in losses["on"]}) > 1
