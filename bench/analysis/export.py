"""`hetbench export RUN`: every rank's steps as one table in the run's time base (device ms for
an emulated run, as summary.json, the table, the report and W&B show them), one row per (step,
rank), as CSV (the standard library's csv) or Parquet (pyarrow, where installed).

The rank logs hold host time; this converts each record by the D it ran at
(bench.results.timebase), adds the step's cluster numbers the summary is computed from (its
time T, its exposed communication) and says which steps the summary's statistics keep, so
that a user's own statistics over the file agree with summary.json. It reads what is on disk:
an unfinished run exports the steps it has. Columns: COLUMNS below, docs/metrics.md.
"""
from __future__ import annotations

import csv
import io
import sys
from pathlib import Path

from bench.results import files, metrics, ranklog, rundir, timebase

EXIT_BAD_INPUT = 2

# (name, type) in the order of the file; docs/metrics.md's 'hetbench export' table says what
# each is (tests/test_export.py checks that the two lists agree).
COLUMNS = (
    ("run_id", "str"), ("step", "int"), ("rank", "int"), ("site", "str"), ("device", "str"),
    ("real_device", "str"), ("warmup", "bool"), ("lagged", "bool"), ("host_lagged", "bool"),
    ("in_summary", "bool"),
    ("data_ms", "float"), ("fwd_ms", "float"), ("bwd_ms", "float"), ("compute_ms", "float"),
    ("pad_ms", "float"), ("wait_ms", "float"), ("transfer_ms", "float"),
    ("injected_ms", "float"), ("opt_ms", "float"), ("outer_ms", "float"), ("step_ms", "float"),
    ("cluster_step_ms", "float"), ("exposed_ms", "float"),
    ("fault_ms", "float"), ("overrun_ms", "float"), ("lag_ms", "float"), ("host_lag_ms", "float"),
    ("tokens", "int"), ("loss", "float"), ("inter_site_bytes", "int"),
    ("time_base", "str"), ("time_scale", "float"),
)
NAMES = tuple(name for name, _ in COLUMNS)
FORMATS = ("csv", "parquet")


class Table:
    """The rows of one run, with what a user should hear about them."""

    def __init__(self, rows: list[dict], world_size: int, time_base: str, status: str,
                 notes: list[str]):
        self.rows, self.world_size, self.time_base = rows, world_size, time_base
        self.status, self.notes = status, notes

    @property
    def steps(self) -> int:
        return len({row["step"] for row in self.rows})


def table(path) -> Table:
    """Every step record on disk, in the run's time base, one row per (step, rank), ordered by
    step then rank. NotARunDir where the path is not a run directory."""
    path = rundir.check(path)
    config, metadata, summary = rundir.read_documents(path)
    notes: list[str] = []
    try:
        records = rundir.device_records(path, metadata, summary, notes)
    except ranklog.CorruptLog as err:
        raise rundir.NotARunDir(str(err)) from None
    world = int(metadata.get("world_size") or summary.get("world_size")
                or 1 + max((r["rank"] for r in records), default=0))
    base = timebase.base_of(summary or metadata)
    scale = timebase.scale_of(summary or metadata)  # what logs without per-record D were divided by
    attributed = [r for r in records if r.get("wait_ms") is not None]
    cluster = {step: metrics.step_values(recs) for step, recs in
               metrics.complete_steps(attributed, world, measured_only=False).items()}
    kept = set(metrics.complete_steps(rundir.for_statistics(attributed, config), world))
    ranks = rundir.rank_table(metadata, summary, world)
    run_id = metadata.get("run_id") or path.name
    rows = [_row(rec, ranks, cluster.get(rec["step"]), rec["step"] in kept, run_id, base, scale)
            for rec in sorted(records, key=lambda r: (r["step"], r["rank"]))]
    if len(attributed) < len(records):
        notes.append(f"{len(records) - len(attributed)} of the records (of a window the run "
                     "did not finish) have no wait_ms / transfer_ms: left empty")
    if not records:
        notes.append("the rank logs hold no step records yet: the file has the header row only")
    status = summary.get("status") or metadata.get("status") or "unknown"
    if status == "running" and not summary:
        status = "incomplete"  # killed, or still going: as `hetbench report` calls it
    return Table(rows, world, base, status, notes)


def _row(rec: dict, ranks: list[dict], step: dict | None, in_summary: bool, run_id: str,
         base: str, scale: float) -> dict:
    info = ranks[rec["rank"]] if rec["rank"] < len(ranks) else {}
    # the device the numbers are of: the emulated one when paced, else the rank's own
    device = info.get("emulated_device") or info.get("device")
    row = {name: rec.get(name) for name in NAMES}
    row.update(run_id=run_id, site=info.get("site"), device=device,
               real_device=info.get("device"), in_summary=in_summary,
               compute_ms=metrics.compute_ms(rec), time_base=base,
               cluster_step_ms=step and step["T"], exposed_ms=step and step["exposed"],
               time_scale=rec.get("time_scale") or scale)
    return {name: _typed(row[name], kind) for name, kind in COLUMNS}


def _typed(value, kind: str):
    """Integers stay integers (JSON and the window's gather may give 256.0), flags flags."""
    if value is None:
        return None
    if kind == "int":
        return int(value)
    if kind == "bool":
        return bool(value)
    return value


def write_csv(tab: Table, out: Path) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=NAMES, lineterminator="\n")
    writer.writeheader()
    writer.writerows(tab.rows)  # None -> empty cell; floats as repr: they read back exactly
    files.write_text_atomic(out, text.getvalue())


def write_parquet(tab: Table, out: Path) -> None:
    pa, pq = _pyarrow()
    types = {"str": pa.string(), "int": pa.int64(), "bool": pa.bool_(), "float": pa.float64()}
    schema = pa.schema([(name, types[kind]) for name, kind in COLUMNS])
    data = pa.Table.from_pylist(tab.rows, schema=schema)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        pq.write_table(data, tmp)
        tmp.replace(out)  # no half file under the name readers look for
    finally:
        tmp.unlink(missing_ok=True)


class ExportError(ValueError):
    """What the user asked for cannot be written; the message names the fix."""


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ExportError("--format parquet needs pyarrow, which is not installed: "
                             "`pip install pyarrow`, or export CSV (--format csv)") from None
    return pa, pq


def output_path(run_dir: Path, fmt: str | None, out: str | None) -> tuple[str, Path]:
    """(format, file): --format, else the --out file's suffix, else CSV; RUN/steps.<format>."""
    fmt = fmt or ("parquet" if out and Path(out).suffix == ".parquet" else "csv")
    path = Path(out) if out else Path(run_dir) / f"steps.{fmt}"
    if path.is_dir():
        path = path / f"steps.{fmt}"
    if not path.parent.is_dir():
        raise ExportError(f"--out {out}: no folder {path.parent} to write into "
                                "(make it first, or give another path)")
    return fmt, path


def export(run_dir, fmt: str | None = None, out: str | None = None) -> tuple[Table, Path]:
    fmt, path = output_path(rundir.check(run_dir), fmt, out)
    if fmt == "parquet":
        _pyarrow()  # before reading the run: say what is missing first
    tab = table(run_dir)
    (write_parquet if fmt == "parquet" else write_csv)(tab, path)
    return tab, path


def main(run_dir: str, fmt: str | None = None, out: str | None = None) -> int:
    try:
        tab, path = export(run_dir, fmt, out)
    except (rundir.NotARunDir, ExportError) as err:
        print(f"hetbench export: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for note in tab.notes:
        print(f"note: {note}")
    unit = "device ms (host ms / each step's time_scale)" if tab.time_base == timebase.DEVICE \
        else "ms (wall clock)"
    print(f"wrote {path}: {len(tab.rows)} rows, {tab.steps} steps of {tab.world_size} ranks, "
          f"times in {unit}")
    if tab.status not in ("ok", "degraded"):
        print(f"note: the run's status is {tab.status}: the file holds the steps it left on disk")
    return 0
