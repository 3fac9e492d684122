"""`hetbench advise [overrides | --from RUN] [--json] [--verify N] [--out DIR]`: search, check,
write. The advise directory (default out_root/advise-<id>) gets advice.json, advice.md, the plot
and the emulated runs (runs/)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import yaml

from bench import config as config_mod
from bench.advise import losscost, report, search, verify
from bench.errors import ConfigError

SCHEMA_VERSION = 1
PLOT = "candidates.png"
DROPPED = ("out_root=", "run_id=", "logger=")  # where a run went, not what it was


def base_overrides(overrides: list[str], from_run: str | None) -> list[str]:
    """The overrides that make the cluster and workload: a finished run's own (its
    .hydra/overrides.yaml) and then the command line's."""
    if not from_run:
        return list(overrides)
    path = Path(from_run) / ".hydra" / "overrides.yaml"
    if not path.exists():
        raise ConfigError("--from", from_run, "not a run directory of `hetbench run` (no "
                          ".hydra/overrides.yaml); point it at runs/<id>")
    own = [str(o) for o in yaml.safe_load(path.read_text()) or []]
    return [o for o in own if not o.startswith(DROPPED)] + list(overrides)


def compose(base: list[str]):
    """The config, with the fused stack pinned where it is auto: the prediction stands for a
    fleet's job (bench.predict.as_fleet_job), and the emulated checks must time the same."""
    cfg = config_mod.compose(base)
    if str(cfg.emulation.stack) == "auto":
        base.append("emulation.stack=fused")
        cfg = config_mod.compose(base)
    return cfg


def top_distinct(ranked: list[dict], n: int) -> list[dict]:
    """The best n rows of distinct strategies (a knob that changes nothing, e.g. two bucket
    caps of one bucket, would otherwise take the emulator's time twice)."""
    out: list[dict] = []
    for r in ranked:
        if len(out) < n and all(o["strategy"] != r["strategy"] for o in out):
            out.append(r)
    return out


def serial(row: dict) -> dict:
    return {k: v for k, v in row.items() if k != "variant"}


def advise(overrides: list[str], from_run: str | None = None, n_verify: int = 3,
           out: str | None = None, say=print) -> dict:
    base = base_overrides(overrides, from_run)
    cfg = compose(base)
    from bench.driver.command import new_run_id

    out_dir = Path(out) if out else Path(cfg.out_root) / f"advise-{new_run_id()}"
    started = time.perf_counter()
    result = search.search(cfg)
    seconds = time.perf_counter() - started
    ranked, baseline = result["ranked"], result["baseline"]
    for i, r in enumerate(ranked):
        r["position"] = i + 1
    ok, why = verify.fits(cfg)
    checked = []
    if ok and n_verify > 0:
        checked = top_distinct(ranked, n_verify)
        if all(r["variant"] != baseline["variant"] for r in checked):
            checked = checked + [baseline]
        verify.verify(base, checked, out_dir / "runs", say)
        same = next((r for r in checked if r["variant"] == baseline["variant"]), None)
        if same is not baseline and same is not None:
            baseline.update(emulated=same["emulated"], error_pct=same["error_pct"])
    elif ok:
        why = "--verify 0"
    unmeasured = [r for r in ranked if r["basis"] != search.BASIS_EQUAL_LOSS]
    doc = {"schema_version": SCHEMA_VERSION, "advise_dir": str(out_dir),
           "overrides": base, "from_run": from_run, "cluster": cfg.cluster.name,
           "network": cfg.network.name, "world_size": baseline["world_size"],
           "mode": "predicted and emulated" if checked else "predicted only",
           "mode_why": why if not checked else "",
           "search": {"candidates": result["evaluated"], "seconds": seconds,
                      "grid": search.GRID, "warmup": search.WARMUP, "measured": search.MEASURED},
           "loss_source": {k: v for k, v in losscost.load().items() if k != "entries"},
           "recommendation": serial(ranked[0]), "baseline": serial(baseline),
           "fastest_unmeasured": serial(max(unmeasured, key=lambda r: r["tokens_per_s"]))
           if unmeasured else None,
           "ranked": [serial(r) for r in ranked], "verified": [serial(r) for r in checked],
           "knobs": search.knob_effects(result)}
    doc["paragraph"] = report.paragraph(doc)
    write(doc, out_dir)
    return doc


def write(doc: dict, out_dir: Path) -> None:
    from bench.advise import plot
    from bench.results import files

    out_dir.mkdir(parents=True, exist_ok=True)
    plot_name = None
    try:
        plot.candidates(doc, out_dir / PLOT)
        plot_name = PLOT
    except ImportError:  # matplotlib missing: the report without its figure
        pass
    files.write_json_atomic(out_dir / "advice.json", doc)
    files.write_text_atomic(out_dir / "advice.md", report.markdown(doc, plot_name))


def main(args) -> int:
    if args.verify < 0:
        raise ConfigError("--verify", str(args.verify), "give the number of top candidates to "
                          "emulate (0: predict only)")
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if args.json else \
        (lambda text: print(text, flush=True))
    doc = advise(args.overrides, args.from_run, args.verify, args.out, say)
    if args.json:
        print(json.dumps(doc))
    else:
        print(report.console(doc))
        print(f"\nhetbench advise: {doc['mode']}; report in {doc['advise_dir']}/advice.md")
    return 0
