"""Does advice hold? `hetbench advise` on the issue's clusters, its top pick and ddp emulated here,
and the search at 10,000 GPUs timed.

    python benchmarks/advise.py [--quick]

For each case: the top pick's predicted and emulated tokens/s (goal: within 10%), and its
emulated tokens/s over ddp's against the factor it claims (predicted over predicted). Cases:
  mixed4 over campus          the default experiment (GPT-2 small on H100 x2 | B200 + A100)
  a100_h100_b200 at 50 ms     A100, 2 H100, B200; one site, so the 50 ms inter-site latency
                              has no link to act on (the cluster preset puts all four on site a)
  mixed4 at 50 ms             the same three generations over two sites 50 ms apart
Then the search alone (no emulation) at 10,000 GPUs: tri_campus, and experiment=scale's 1.3B
workload; goal under 10 s. --quick: the first case and the timing only.

Last lines: advise_<case>_<figure>=<value>.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.advise import main as advise_main

CASES = {
    "mixed4_campus": ["cluster=mixed4", "network=campus"],
    "a100_h100_b200_50ms": ["cluster=a100_h100_b200", "network.inter_site.latency_ms=50"],
    "mixed4_50ms": ["cluster=mixed4", "network.inter_site.latency_ms=50"],
}
SCALE = {"tri_campus_10k": ["cluster=tri_campus", "network=tri_campus",
                            "predict.world_size=10000"],
         "scale_1p3b_10k": ["experiment=scale", "predict.world_size=10000"]}


def check(name: str, overrides: list[str], out: Path) -> dict:
    started = time.perf_counter()
    doc = advise_main.advise([*overrides, "logger=none"], n_verify=1, out=str(out / name),
                             say=lambda text: print(f"  {text}", flush=True))
    best, base = doc["verified"][0], doc["baseline"]
    em, em_base = best["emulated"]["tokens_per_s"], base["emulated"]["tokens_per_s"]
    claimed = best["tokens_per_s"] / base["tokens_per_s"]
    print(f"{name}: top pick {best['strategy']} ({best['overrides']})\n"
          f"  predicted {best['tokens_per_s']:,.0f} tok/s, emulated {em:,.0f} "
          f"({best['error_pct']:+.2f}%); ddp predicted {base['tokens_per_s']:,.0f}, emulated "
          f"{em_base:,.0f} ({base['error_pct']:+.2f}%)\n"
          f"  over ddp: claimed x{claimed:.3f}, emulated x{em / em_base:.3f}; at equal loss "
          f"claimed {_x(best['equal_loss_speedup'])} ({best['basis']})\n"
          f"  search {doc['search']['seconds']:.2f} s, {time.perf_counter() - started:.0f} s in "
          f"all", flush=True)
    return {"pred_error_pct": best["error_pct"], "ddp_pred_error_pct": base["error_pct"],
            "claimed_x": claimed, "emulated_x": em / em_base}


def _x(value) -> str:
    return "-" if value is None else f"x{value:.3f}"


def search_time(name: str, overrides: list[str], out: Path) -> float:
    doc = advise_main.advise([*overrides, "logger=none"], n_verify=0, out=str(out / name),
                             say=print)
    s = doc["search"]
    best = doc["recommendation"]
    print(f"{name}: {s['candidates']} candidates at {doc['world_size']:,} GPUs in "
          f"{s['seconds']:.2f} s ({doc['mode']}); top pick {best['strategy']} "
          f"({best['overrides']}) x{best['speedup']:.2f} ddp", flush=True)
    return s["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    cases = dict(list(CASES.items())[:1]) if args.quick else CASES
    figures = {}
    with tempfile.TemporaryDirectory(prefix="hetbench-advise-") as tmp:
        for name, overrides in cases.items():
            for key, value in check(name, overrides, Path(tmp)).items():
                figures[f"{name}_{key}"] = value
        for name, overrides in SCALE.items():
            figures[f"{name}_search_s"] = search_time(name, overrides, Path(tmp))
    for key, value in figures.items():
        print(f"advise_{key}={value:.3f}")


if __name__ == "__main__":
    main()
