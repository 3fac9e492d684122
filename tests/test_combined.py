"""Combined strategies: the balanced split (strategy.split) with every exchange and outer sync.
The config and its name, the split's scope (all ranks, or each site for localsgd / diloco), the
loss weights giving each site's replica the uniform split's gradient, the predictor on the
combinations, and one short emulated diloco+balanced run against its prediction."""
from __future__ import annotations

import pytest
import torch
from conftest import read_json, read_records, run_hetbench
from omegaconf import OmegaConf

from bench import config
from bench.analysis import remedies
from bench.config.schema import STRATEGIES
from bench.costs import balance, cluster, device_times, split
from bench.predict import fleet as fleet_mod
from bench.predict import predict
from bench.predict.run import predict_run
from bench.rank.data import Batches, build_language
from bench.rank.model import build_model
from bench.strategies import loss_weight

REMEDIES = ["experiment=remedies", "network.inter_site.latency_ms=50"]


def _cfg(*overrides: str):
    cfg = config.compose([*REMEDIES, *overrides])
    config.validate(cfg)
    return cfg


def _site_sums(cfg, batches):
    sums: dict = {}
    for row, b in zip(cluster.rank_table(cfg), batches):
        sums[row["site"]] = sums.get(row["site"], 0) + b
    return sums


@pytest.mark.parametrize("name", [s for s in STRATEGIES if s != "balanced"])
def test_every_strategy_takes_the_balanced_split(name):
    cfg = _cfg(f"strategy={name}", "strategy.split=balanced")
    batches, mb = device_times.micro_batches(cfg), cfg.train.micro_batch
    assert split.is_balanced(cfg.strategy) and batches != [mb] * 4
    assert split.label(cfg.strategy) == ("balanced" if name == "ddp" else f"{name}+balanced")
    if name in split.OUTER_SYNC:  # each site splits its own share: mixed4's site b only
        assert _site_sums(cfg, batches) == {"a": 2 * mb, "b": 2 * mb}
        assert batches[:2] == [mb, mb] and batches[2] > batches[3]  # the B200 over the A100
        work = device_times.step_work(cfg)
        assert batches[2:] == balance.split_batch(2 * mb, work[2:])
    else:  # one split over every rank: strategy=balanced's
        assert batches == device_times.micro_batches(_cfg("strategy=balanced"))


def test_the_balanced_preset_keeps_its_name_and_split():
    preset, spelled = _cfg("strategy=balanced"), _cfg("strategy=ddp", "strategy.split=balanced")
    assert split.label(preset.strategy) == split.label(spelled.strategy) == "balanced"
    assert device_times.micro_batches(preset) == device_times.micro_batches(spelled)
    for name in STRATEGIES:
        if name != "balanced":
            cfg = _cfg(f"strategy={name}")
            assert split.label(cfg.strategy) == name and not split.is_balanced(cfg.strategy)
            assert device_times.micro_batches(cfg) == [cfg.train.micro_batch] * 4
    # a config written before strategy.split: its preset's split
    assert split.is_balanced(OmegaConf.create({"name": "balanced"}))
    assert not split.is_balanced(OmegaConf.create({"name": "diloco", "split": None}))


def test_sites_listed_apart_balance_each_run_of_ranks():
    groups = "cluster.groups=[{device:H100,count:1,site:a},{device:A100,count:1,site:a}," \
             "{device:B200,count:1,site:b},{device:A100,count:1,site:a}]"
    cfg = _cfg("strategy=diloco", "strategy.split=balanced", groups)
    assert split.scopes(cfg.strategy, ["a", "a", "b", "a"]) == [[0, 1], [2], [3]]
    batches = device_times.micro_batches(cfg)
    assert batches[0] + batches[1] == 16 and batches[2:] == [8, 8] and batches[0] > batches[1]


def test_names_in_reports_read_as_the_run_reports_them():
    assert split.label_of("diloco", "balanced") == "diloco+balanced"
    assert split.label_of("balanced") == "balanced" and split.label_of("diloco") == "diloco"
    # a sweep point without a summary is named from its swept keys
    row = {"swept": {"strategy": "diloco", "strategy.split": "balanced"}}
    assert remedies.strategy_of(row) == "diloco+balanced"
    assert remedies.strategy_of({"strategy": {"name": "x+balanced"}, "swept": {}}) == "x+balanced"
    keys = ["strategy", "strategy.split", "network.inter_site.latency_ms"]
    assert remedies.group_keys(keys) == ["network.inter_site.latency_ms"]
    assert remedies.strategy_swept(["strategy.split"]) and not remedies.strategy_swept(["x"])


def _site_grads(model, lang, batches, seq_len):
    """Each site's gradient as diloco's inner step averages it: (1/n_s) sum over the site's
    ranks of (the rank's mean loss x its loss weight)'s gradient (mixed4: ranks 0-1, 2-3)."""
    out, offset = [], 0
    per_rank = []
    for r, b in enumerate(batches):
        x = torch.from_numpy(Batches(lang, 0, r, b, seq_len, torch.device("cpu"), offset=offset,
                                     uniform=8).sequences(5))
        per_rank.append(model(x[:, :-1], x[:, 1:]) * loss_weight(batches, r))
        offset += b
    for site in ((0, 1), (2, 3)):
        model.zero_grad()
        (sum(per_rank[r] for r in site) / len(site)).backward(retain_graph=True)
        out.append(torch.cat([p.grad.reshape(-1).clone() for p in model.parameters()]))
    return out


def test_each_site_replica_gets_the_uniform_split_s_gradient():
    """diloco+balanced: each site's averaged gradient is the uniform split's to fp rounding.
    The control, strategy=balanced's global split under the same in-site average, is not:
    it moves sequences between the sites."""
    torch.manual_seed(0)
    cfg = _cfg("strategy=diloco", "strategy.split=balanced", "train.seq_len=16")
    lang = build_language(cfg.data, 0)
    model = build_model(cfg.model, cluster.vocab_size(cfg), 16).double()
    uniform = _site_grads(model, lang, [8] * 4, 16)
    combined = device_times.micro_batches(cfg)
    assert combined != [8] * 4
    for got, want in zip(_site_grads(model, lang, combined, 16), uniform):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-12)
    moved = _site_grads(model, lang, device_times.micro_batches(_cfg("strategy=balanced")), 16)
    assert not torch.allclose(moved[1], uniform[1], rtol=1e-3, atol=1e-6)


def test_the_predictor_splits_as_the_emulator_does():
    cfg = _cfg("strategy=diloco", "strategy.split=balanced")
    f = fleet_mod.build(cfg)
    per_rank = [int(t / (cfg.train.seq_len * device_times.tokens_scale(cfg)))
                for t, n in zip(f.tokens, f.count) for _ in range(int(n))]
    assert per_rank == device_times.micro_batches(cfg)
    # beyond the per-rank limit, the group-level split keeps each site's share too
    big = fleet_mod.build(_cfg("strategy=diloco", "strategy.split=balanced"), 1003)
    share: dict = {}
    for site, tokens, n in zip(big.site, big.tokens, big.count):
        share[site] = share.get(site, 0) + tokens * n
    counts = fleet_mod.scaled_counts(cfg, 1003)
    seq = cfg.train.seq_len * device_times.tokens_scale(cfg) * cfg.train.micro_batch
    assert share == pytest.approx({"a": counts[0] * seq, "b": (counts[1] + counts[2]) * seq})


def test_predicted_combination_steps_at_its_slowest_rank_and_beats_its_parts():
    """No link delay (emulation.network=off): every step is the slowest rank's compute +
    optimizer at the combined split, from the device model directly."""
    off = ["emulation.network=off", "strategy.sync_every=16"]
    steps = {}
    for name, extra in (("diloco+balanced", ["strategy=diloco", "strategy.split=balanced"]),
                        ("diloco", ["strategy=diloco"]), ("balanced", ["strategy=balanced"])):
        cfg = _cfg(*off, *extra)
        result = predict(cfg)
        assert result["strategy"] == name
        slowest = max(t.compute_ms + t.opt_ms for t in device_times.rank_times(cfg))
        assert result["step_ms"]["p50"] == pytest.approx(slowest, rel=1e-9)
        steps[name] = result["step_ms"]["p50"]
    assert steps["diloco+balanced"] < 0.6 * steps["diloco"]  # the A100 no longer sets the pace
    # with the link (50 ms), the combination beats both of its parts
    tps = {n: predict(_cfg(*extra))["tokens_per_s"] for n, extra in (
        ("combined", ["strategy=diloco", "strategy.split=balanced"]),
        ("diloco", ["strategy=diloco"]), ("balanced", ["strategy=balanced"]))}
    assert tps["combined"] > 1.5 * max(tps["diloco"], tps["balanced"])


@pytest.mark.slow
@pytest.mark.heavy
def test_emulated_diloco_with_the_balanced_split(tmp_path):
    """A short paced run: it trains, its ranks take the per-site balanced split, it reports
    itself as diloco+balanced, and the predictor reproduces its step time."""
    overrides = ["experiment=remedies", "strategy=diloco", "strategy.split=balanced",
                 "train.micro_batch=8", "train.seq_len=16", "train.steps=12",
                 "train.warmup_steps=4", "train.log_every=4", "strategy.sync_every=4"]
    rc, run_dir, output = run_hetbench(tmp_path, *overrides)
    assert rc == 0, output
    summary = read_json(run_dir / "summary.json")
    assert summary["strategy"]["name"] == "diloco+balanced"
    assert summary["strategy"]["split"] == "balanced"
    assert "strategy diloco+balanced" in output
    cfg = config.compose(overrides)
    split_of_run = device_times.micro_batches(cfg)
    assert split_of_run == [8, 8, 14, 2]  # the device model's: site b's B200 takes the most
    per_seq = cfg.train.seq_len * device_times.tokens_scale(cfg)
    tokens = {r["rank"]: r["tokens"] for r in read_records(run_dir)}
    assert [tokens[r] / per_seq for r in range(4)] == split_of_run
    predicted = predict_run(run_dir)["prediction"]["step_ms"]["p50"]
    assert predicted == pytest.approx(summary["step_ms"]["p50"], rel=0.10)
