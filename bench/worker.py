"""One rank's run: set-up, the measured loop with windowed cross-rank gathers, and the
finish that always leaves what was measured on disk."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import os
import platform
import subprocess
import time
from pathlib import Path

import torch
import torch.distributed as dist

import bench
from bench import config as config_mod
from bench import boundness, device_times, emulate, interrupts, metrics, mfu, precision, sinks, timebase
from bench.costs import devices
from bench.dist import DistEnv, measure_clock_offsets
from bench.hardware import detect_local_device, lookup
from bench.model import describe
from bench.records import RecordTable, as_record
from bench.trainer import NoLink, NoPacing, Trainer


def resolve_run_id(cfg) -> str:
    """From the config, HETBENCH_RUN_ID or TORCHELASTIC_RUN_ID; else rank 0 picks and shares one.
    Never from each rank's own clock: ranks would disagree."""
    run_id = cfg.run_id or os.environ.get("HETBENCH_RUN_ID") or os.environ.get("TORCHELASTIC_RUN_ID")
    if run_id and run_id != "none":
        return run_id
    box = [_dt.datetime.now().strftime("%Y%m%d-%H%M%S") + f"-{os.getpid() % 10000:04d}"]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             cwd=Path(bench.__file__).parent, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


class RankRun:
    def __init__(self, cfg, env: DistEnv, run_dir: Path, run_id: str, calibrate_only: bool = False,
                 stop: interrupts.RankStop | None = None):
        self.cfg, self.env, self.run_dir, self.run_id = cfg, env, Path(run_dir), run_id
        self.stop = stop or interrupts.RankStop()  # not installed: never requested
        self.calibrate_only = calibrate_only  # a sweep's probe: calibrate, write, no training
        self.is_main = env.rank == 0
        self.pending: list[dict] = []  # this rank's records not yet gathered
        self.all_records = RecordTable(STORED)  # rank 0: every rank's attributed records
        self.log = sinks.RankLog(self.run_dir, env.rank)
        self.logger = sinks.NullLogger()
        # Filled by setup(); close() must work even if setup failed half-way.
        self.trainer, self.ranks, self.offsets = None, [], []
        self.real, self.compute_precision = None, None
        self.pacer, self.link = NoPacing(), NoLink()
        self.scale, self.time_base = 1.0, timebase.WALL  # what users read: host ms / scale
        self.started = _dt.datetime.now().astimezone().isoformat()

    # -- set-up -------------------------------------------------------------------------------

    def setup(self) -> None:
        cfg, env = self.cfg, self.env
        self.offsets = measure_clock_offsets(env)
        self.real = detect_local_device(env.device.type)
        self.compute_precision = precision.agree(cfg.train.precision, env.device.type,
                                                 self.real["catalog"], _gather_objects)
        self.trainer = Trainer(cfg, env, precision=self.compute_precision)
        self.pacer, self.link = emulate.build(cfg, env, self.trainer.gradient_numel())
        self.trainer.attach(self.pacer, self.link)
        self.trainer.offset_s = self.link.offset_s = self.offsets[env.rank]["offset_s"]
        self.scale = emulate.calibrate(self.pacer, self.link, self.trainer.faults, self.trainer, cfg)
        self.time_base = emulate.time_base(cfg, self.pacer)
        self.ranks = self._gather_rank_info()  # after calibration: a GPU pacer's real times
        if self.calibrate_only:
            return
        if self.is_main:
            self._write_metadata("running")
            self.logger = _make_logger(cfg, self.run_dir, self.run_id)
            print(f"hetbench: {describe(self.trainer.model)}; {env.world_size} ranks on "
                  f"{env.backend}; run dir {self.run_dir}", flush=True)

    def _gather_rank_info(self) -> list[dict]:
        table = config_mod.rank_table(self.cfg)[self.env.rank]
        real = self.real
        emulating = self.pacer.active
        times = self.pacer.device if emulating else \
            _real_device_times(self.cfg, real, self.env.rank, self.compute_precision)
        mine = {"rank": self.env.rank, "host": self.env.host, "local_rank": self.env.local_rank,
                "site": table["site"], "device": real["catalog"] or real["name"],
                "real_device": real, "emulated_device": table["device"] if emulating else None,
                "configured_device": table["device"],
                "device_times": times and times.as_dict(),
                "speed": times and 1000.0 / times.compute_ms,  # device steps/s of compute
                "clock_offset_s": self.offsets[self.env.rank]["offset_s"],
                "clock_uncertainty_s": self.offsets[self.env.rank]["uncertainty_s"],
                "threads": torch.get_num_threads(),
                **mfu.rank_basis(self.cfg, real, table["device"] if emulating else None,
                                 self._precision(), self.env.device.type),
                **boundness.verdict(self.trainer, times, self.env.device.type)}
        everyone = [None] * self.env.world_size
        dist.all_gather_object(everyone, mine)
        return everyone

    # -- the loop -----------------------------------------------------------------------------

    def train(self) -> None:
        if self.calibrate_only:
            return self._write_calibration()
        progress = sinks.Progress(self.cfg.train.steps, time_base=self.time_base) \
            if self.is_main else None
        self.stop.check()  # a Ctrl-C during set-up
        self.stop.deferred = True  # from here on, stop at a step boundary, never inside a step
        self.run_steps(range(self.cfg.train.steps), progress)
        if progress:
            progress.close()

    def run_steps(self, steps, progress=None) -> None:
        """Train `steps` (consecutive step numbers), gathering every `log_every` steps."""
        every, last = self.cfg.train.log_every, self.cfg.train.steps - 1
        for step in steps:
            self.pending.append(self.trainer.step(step))
            self.stop.check()
            if (step + 1) % every == 0 or step == last:
                window = self._gather_window()
                self._align_next_step()
                if progress:
                    _show_progress(progress, window, step)

    def _align_next_step(self) -> None:
        """The gather is no step's time: the ranks agree on one instant (the last to get here,
        plus a margin) at which the next emulated step starts, so it starts together."""
        if not self.pacer.timeline:  # wall-clock marks (real GPUs) have no timeline to align
            return
        offset = self.trainer.offset_s
        latest = torch.tensor([time.monotonic() + offset], dtype=torch.float64, device=self.env.device)
        dist.all_reduce(latest, op=dist.ReduceOp.MAX)
        self.pacer.resync(float(latest.item()) - offset + ALIGN_MARGIN_S)

    def _gather_window(self) -> list[dict]:
        """One all-gather per window (never per step): attribute wait/transfer, write, keep.

        Records travel as one float64 tensor of their numeric fields (no pickling): this runs
        every `log_every` steps on every rank, so it must stay cheap."""
        mine = torch.tensor([[float(rec[k]) for k in GATHERED] for rec in self.pending],
                            dtype=torch.float64, device=self.env.device)  # (steps, fields)
        everyone = [torch.empty_like(mine) for _ in range(self.env.world_size)]
        dist.all_gather(everyone, mine)
        window = [_unpack(row) for rows in everyone for row in rows.tolist()]
        metrics.attribute(window)
        mine_attributed = [w for w in window if w["rank"] == self.env.rank]
        for rec, done in zip(self.pending, mine_attributed):
            rec["wait_ms"], rec["transfer_ms"] = done["wait_ms"], done["transfer_ms"]
        self.log.write(self.pending)  # host time on disk; users read window (device time)
        self.pending = []
        window = timebase.to_device(window, self.scale)
        if self.is_main:
            self.all_records.extend(window)
            self.logger.log_window(window[-1]["step"], window, self.ranks)
        return window

    # -- the end ------------------------------------------------------------------------------

    def close(self, status: str, error: str | None = None) -> None:
        """Runs on every path (status ok, failed or interrupted). Unattributed records still go
        to disk (wait/transfer null)."""
        self.stop.deferred = True  # a Ctrl-C now must not cut the summary short
        if self.trainer is not None:
            self.trainer.close()
        disk_error = self._close_log()
        if disk_error is not None and status == "ok":
            status, error = "failed", f"rank {self.env.rank}: could not write its records: {disk_error}"
        if self.is_main and not self.calibrate_only:
            summary = self._summary(status)
            if error:
                summary["error"] = error
            sinks.write_json_atomic(self.run_dir / "summary.json", summary)
            self._write_metadata(status, error)
            self.logger.finish(summary, status == "ok")
            self._print_summary(summary)
        if disk_error is not None:
            raise disk_error  # the rank fails; the summary above still says what was measured

    def _close_log(self) -> OSError | None:
        """Write the pending records and close the log; a full disk is returned, not raised,
        so that rank 0 still tries to write the summary (a few kB, where the log needs more)."""
        try:
            if self.pending:
                self.log.write(self.pending)
            self.pending = []
            self.log.close()
        except OSError as err:
            self.log.abandon()
            return err
        return None

    def _print_summary(self, summary: dict) -> None:
        if summary["status"] != "ok":
            print(f"hetbench: run {summary['status']}; the table covers the steps every rank "
                  "recorded before it stopped", flush=True)
        if summary.get("steps_measured"):
            print(sinks.format_table(summary), flush=True)
            print(sinks.format_headline(summary), flush=True)
        for line in emulate.warnings(summary):
            print("warning: " + line, flush=True)

    def _summary(self, status: str) -> dict:
        summary = {"world_size": self.env.world_size, "steps_measured": 0}
        records = self.all_records.records()
        if self.ranks:
            summary = metrics.summarize(records, self.ranks, self.cfg.straggler_threshold,
                                        self._targets())
            summary["emulation"] = emulate.summary_section(records, self.ranks,
                                                           self.pacer, self.link, self.scale)
        if summary.get("step_ms"):
            summary["host_step_ms_p50"] = summary["step_ms"]["p50"] * self.scale
            summary.update(self._strategy_numbers(records, summary["tokens_per_s"]))
        summary["precision"] = self._precision_section()
        summary.update(schema_version=metrics.SCHEMA_VERSION, run_id=self.run_id, status=status,
                       time_base=self.time_base, time_scale=self.scale,
                       entropy_floor=self.trainer.language.entropy_floor if self.trainer else None)
        return summary

    def _targets(self) -> list:
        """Each rank's compute target in the reported time base (None when not paced)."""
        if not self.pacer.active or self.pacer.time_scale is None:
            return [None] * len(self.ranks)
        return metrics.pacing_targets(self.ranks, self.pacer.time_scale / self.scale)

    def _strategy_numbers(self, records: list[dict], tokens_per_s: float) -> dict:
        """The strategy, its inter-site bytes per step (mean over measured steps, so a periodic
        sync counts at its rate) and the sum-of-speeds ideal it is measured against."""
        steps = metrics.complete_steps(records, self.env.world_size)
        per_step = [max(r["inter_site_bytes"] for r in recs) for recs in steps.values()]
        # The ideal is in device time: comparable only with a device-time tokens/s.
        ideal = device_times.ideal_tokens_per_s(self.cfg) \
            if self.pacer.active and self.time_base == timebase.DEVICE else None
        return {"strategy": self.trainer.strategy.describe(),
                "inter_site_bytes_per_step": sum(per_step) / len(per_step) if per_step else None,
                "ideal_tokens_per_s": ideal,
                "ideal_share": ideal and tokens_per_s / ideal}

    def _write_calibration(self) -> None:
        """What a sweep needs to pick one D for all its points: every rank's host times."""
        host = [None] * self.env.world_size
        dist.all_gather_object(host, self.pacer.host_ms)
        if self.is_main:
            sinks.write_json_atomic(self.run_dir / "calibration.json",
                                    {"world_size": self.env.world_size, "host_ms": host})

    def _write_metadata(self, status: str, error: str | None = None) -> None:
        env, model = self.env, self.trainer and self.trainer.model
        meta = {
            "schema_version": metrics.SCHEMA_VERSION, "run_id": self.run_id, "status": status,
            "versions": {"hetbench": bench.__version__, "git_sha": git_sha(),
                         "torch": torch.__version__, "python": platform.python_version()},
            "backend": env.backend, "world_size": env.world_size,
            "hosts": sorted({r["host"] for r in self.ranks}),
            "ranks": self.ranks,
            "clock_offsets": self.offsets,
            "model": {"name": self.cfg.model.name,
                      "params": model and model.num_params(non_embedding=False),
                      "flops_per_token": model and model.flops_per_token()},
            "entropy_floor": self.trainer and self.trainer.language.entropy_floor,
            "precision": self._precision_section(),
            "emulation": {**self.pacer.describe(), **self.link.describe(),
                          "time_base": self.time_base, "time_scale": self.scale,
                          "precision": self._precision(), "device_model": self._device_model()},
            "network": config_mod.to_container(self.cfg.network),
            "strategy": self.trainer and self.trainer.strategy.describe(),
            "env": sinks.allowed_env(),
            "start_time": self.started,
            "end_time": None if status == "running" else _dt.datetime.now().astimezone().isoformat(),
        }
        if error:
            meta["error"] = error
        sinks.write_json_atomic(self.run_dir / "metadata.json", meta)

    def _device_model(self) -> list[dict]:
        """The device model's defaults and their sources for every device of this run."""
        names = sorted({r["emulated_device"] or r["device"] for r in self.ranks})
        return [devices.describe_defaults(n, self._precision()) for n in names if lookup(n)]

    def _precision_section(self) -> dict:
        """What the ranks computed in, what the device model timed, and how (metadata, summary)."""
        return {"requested": self.cfg.train.precision, "compute": self.compute_precision,
                "device_model": self._precision(), "compile": bool(self.cfg.train.compile),
                "prefetch": self.trainer is not None
                and self.trainer.source is not self.trainer.batches}

    def _precision(self) -> str:
        """The device model's precision when emulating (CPU ranks compute in fp32 but time the
        configured precision); on real GPUs, the precision the fleet agreed to compute in."""
        if self.pacer.active or self.env.device.type != "cuda" or not self.compute_precision:
            return device_times.precision(self.cfg)
        return self.compute_precision


ALIGN_MARGIN_S = 0.002  # lets every rank wake from the agreement before the common start

# The numeric record fields every rank shares each window (bucket_bytes stays local).
GATHERED = ("step", "rank", "warmup", "t_start_s", "t_ready_s", "t_synced_s", "t_end_s", "data_ms",
            "fwd_ms", "bwd_ms", "pad_ms", "injected_ms", "opt_ms", "step_ms",
            "tokens", "loss", "fault_ms", "overrun_ms", "lag_ms", "outer_ms", "inter_site_bytes")
STORED = GATHERED + ("wait_ms", "transfer_ms")  # what rank 0 keeps: attributed records


def _unpack(row: list[float]) -> dict:
    return as_record(GATHERED, row)


def _real_device_times(cfg, real: dict, rank: int, compute_precision: str):
    """The device model's times for the GPU this rank really runs on, at its micro-batch and the
    precision it computes in; None for a CPU or an unknown device."""
    if not lookup(real["catalog"]):
        return None
    batch = device_times.micro_batches(cfg)[rank]
    work = dataclasses.replace(device_times.workload(cfg, batch, own=True),
                               precision=compute_precision)
    return devices.phase_times(real["catalog"], work)


def _gather_objects(mine) -> list:
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return everyone


def _show_progress(progress, window: list[dict], step: int) -> None:
    """tok/s over the window as summary.json counts it (all ranks' tokens / sum of the step
    times, a step lasting as long as its slowest rank), the last step's time and mean loss."""
    steps = metrics.complete_steps(window, _world_of(window), measured_only=False)
    tokens = sum(r["tokens"] for recs in steps.values() for r in recs)
    spent_ms = sum(max(r["step_ms"] for r in recs) for recs in steps.values())
    last = steps[step]
    loss = sum(r["loss"] for r in last) / len(last)
    progress.update(step, tokens / spent_ms * 1000.0, max(r["step_ms"] for r in last), loss)


def _world_of(window: list[dict]) -> int:
    return 1 + max(r["rank"] for r in window)


def _make_logger(cfg, run_dir: Path, run_id: str):
    mode = os.environ.get("WANDB_MODE", cfg.logger.wandb.mode)
    if mode == "disabled":
        return sinks.NullLogger()
    from bench.wandb_logger import WandbLogger  # lazy: wandb is slow to import

    return WandbLogger(cfg, run_dir, run_id, mode)
