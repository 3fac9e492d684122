"""Rank 0's account of a collectives run: the table on stdout as rows are measured, and
collectives.json (written atomically after every block, so that a failed run still leaves what
it measured, with its status). Other ranks hold a report that does nothing."""
from __future__ import annotations

import datetime as _dt
import platform
from pathlib import Path

import torch

import bench
from bench import config as config_mod
from bench.collectives import fit, scopes, spec, table
from bench.results import files

EMULATION_NOTE = ("Each collective pays the modelled time of its op and scope "
                  "(bench.costs.links: NCCL's tuner model on the group's nodes, NICs and uplinks) "
                  "in real milliseconds, no time dilation (D = 1): the group's "
                  "wire starts when its last rank joins and every rank ends at that start plus "
                  "the model time. This machine's real transfer (Gloo on loopback) runs inside "
                  "that window; where it is slower than the model, the measured time exceeds "
                  "the model. Jitter is not emulated.")


LATE_WARN = 0.1  # share of a row's windows overrun past which the summary says so


class Report:
    def __init__(self, cfg, env, plan: spec.Plan, runner, run_dir: Path, run_id: str,
                 hosts: list[str]):
        self.is_main = env.rank == 0
        self.emulated = runner.emulated
        self.run_dir, self.rows = Path(run_dir), []
        self.doc = _document(cfg, env, plan, runner, run_id, hosts) if self.is_main else {}
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write("running")
            for line in table.banner(plan, env.world_size, self.doc["sites"],
                                     self.doc["links"], self.emulated):
                _print(line)
            _print(table.header(self.emulated))

    def skip(self, scope: str) -> None:
        if self.is_main:
            need = "two sites" if scope == "cross" else "a site of two ranks or more"
            _print(f"# scope {scope}: skipped (nothing to exchange: it needs {need})")

    def block(self, op: str, scope) -> None:
        if self.is_main:
            hops = self.doc["scopes"][scope.name]["hops"]
            over = " and ".join(f"{n} {kind} hops" for kind, n in hops.items()) or "no link"
            _print(f"# {op} in scope {scope.name}: groups {scope.groups}, a ring of {over}")

    def row(self, row: dict) -> None:
        if self.is_main:
            _print(table.format_row(row, self.emulated))

    def done(self, rows: list[dict]) -> None:
        self.rows = list(rows)
        if self.is_main:
            self._write("running")

    def finish(self, status: str, error: str | None = None) -> None:
        if not self.is_main:
            return
        if error:
            self.doc["error"] = error
        self._write(status)
        late = [r for r in self.rows if r.get("late_share", 0) > LATE_WARN]
        if late:
            _print(f"# {len(late)} of {len(self.rows)} rows: this machine's real transfer "
                   f"overran the emulated window in over {LATE_WARN:.0%} of the iterations, so "
                   "their time exceeds the model (late_share in the JSON)")
        fits = self.doc["fit"]
        for kind, f in fits.items():
            bw = f"{f['bandwidth_gbps']:.3f} Gb/s" if f["bandwidth_gbps"] else "unlimited"
            _print(f"# fit {kind} ({f['op']} in scope {f['scope']}, {f['points']} sizes): "
                   f"latency {f['latency_ms']:.4f} ms, bandwidth {bw}")

    def _write(self, status: str) -> None:
        self.doc.update(status=status, rows=self.rows, fit=fit.fit_rows(self.rows))
        if status != "running":
            self.doc["end_time"] = _now()
        files.write_json_atomic(self.run_dir / "collectives.json", self.doc)


def _document(cfg, env, plan, runner, run_id: str, hosts: list[str]) -> dict:
    sites = runner.sites
    network = config_mod.to_container(cfg.network)
    return {
        "schema_version": table.SCHEMA_VERSION, "kind": "collectives", "run_id": run_id,
        "status": "running",
        "config": config_mod.to_container(cfg),
        "world": {"size": env.world_size, "backend": env.backend, "device": env.device.type,
                  "hosts": hosts},
        "sites": {s: [r for r, site in enumerate(sites) if site == s] for s in dict.fromkeys(sites)},
        "scopes": {name: {"groups": scope.groups, "ranks": scope.ranks,
                          "hops": _kinds(max(scope.groups, key=len, default=[]), sites)}
                   for name, scope in runner.scopes.items()},
        "links": {k: network[k] for k in ("intra_site", "inter_site")},
        "emulation": {"network": "on" if runner.emulated else "off", "time_scale": 1.0,
                      "time_base": "wall", "note": EMULATION_NOTE if runner.emulated else
                      "No link is emulated: the times are this machine's own transport."},
        "settings": plan.describe(),
        "units": table.UNITS,
        "columns": [key for key, *_ in table.COLUMNS + (table.MODEL_COLUMNS if runner.emulated
                                                         else [])],
        "rows": [], "fit": {},
        "versions": {"hetbench": bench.__version__, "torch": torch.__version__,
                     "python": platform.python_version()},
        "start_time": _now(), "end_time": None,
    }


def _kinds(group: list[int], sites: list[str]) -> dict[str, int]:
    """{link kind: hops} of a group's ring."""
    return scopes.group_kinds(group, sites)


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat()


def _print(line: str) -> None:
    print(line, flush=True)
