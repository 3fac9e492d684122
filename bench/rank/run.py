"""One rank's run: set-up, the measured loop with windowed cross-rank gathers, and the
finish that always leaves what was measured on disk."""
from __future__ import annotations

import dataclasses
import datetime as _dt
import time
from pathlib import Path

import torch
import torch.distributed as dist

from bench import emulate, interrupts
from bench.costs import device_times, devices
from bench.costs import fleet as fleet_mod
from bench.emulate import lag
from bench.emulate.base import NoLink, NoPacing
from bench.hardware import detect_local_device, lookup
from bench.rank import boundness, loggers, outputs, precision
from bench.rank import window as window_mod
from bench.rank.dist import DistEnv, measure_clock_offsets
from bench.rank.model import describe
from bench.rank.trainer import Trainer
from bench.results import console, files, metrics, ranklog, timebase
from bench.results.records import RecordTable


class RankRun:
    def __init__(self, cfg, env: DistEnv, run_dir: Path, run_id: str, calibrate_only: bool = False,
                 stop: interrupts.RankStop | None = None):
        self.cfg, self.env, self.run_dir, self.run_id = cfg, env, Path(run_dir), run_id
        self.stop = stop or interrupts.RankStop()  # not installed: never requested
        self.calibrate_only = calibrate_only  # a sweep's probe: calibrate, write, no training
        self.is_main = env.rank == 0
        self.pending: list[dict] = []  # this rank's records not yet gathered
        self.all_records = RecordTable(window_mod.STORED)  # rank 0: every rank's attributed records
        self.log = ranklog.RankLog(self.run_dir, env.rank)
        self.logger = loggers.NullLogger()
        # Filled by setup(); close() must work even if setup failed half-way.
        self.trainer, self.fleet, self.ranks, self.offsets = None, None, [], []
        self.real, self.compute_precision = None, None
        self.pacer, self.link = NoPacing(), NoLink()
        self.scale, self.time_base = 1.0, timebase.WALL  # what users read: host ms / scale
        self.scale_changes: list[dict] = []  # D raised mid-run (bench.emulate.lag)
        self.started = _dt.datetime.now().astimezone().isoformat()

    # -- set-up -------------------------------------------------------------------------------

    def setup(self) -> None:
        cfg, env = self.cfg, self.env
        self.offsets = measure_clock_offsets(env)
        self.real = detect_local_device(env.device.type)
        self.compute_precision = precision.agree(cfg.train.precision, env.device.type,
                                                 self.real["catalog"], gather_objects)
        self.fleet = fleet_mod.build(cfg, env.device.type)  # once: every component reads it
        self.trainer = Trainer(cfg, env, self.fleet, precision=self.compute_precision)
        self.pacer, self.link = emulate.build(cfg, env, self.fleet, self.trainer.gradient_numel())
        self.trainer.attach(self.pacer, self.link)
        self.trainer.offset_s = self.link.offset_s = self.offsets[env.rank]["offset_s"]
        self.scale = emulate.calibrate(self.pacer, self.link, self.trainer.faults, self.trainer, cfg)
        self.time_base = emulate.time_base(cfg, self.pacer)
        self.ranks = self._gather_rank_info()  # after calibration: a GPU pacer's real times
        if self.calibrate_only:
            return
        # The log says its clock before any record: host time, and the D that makes device time.
        self.log.write_header(ranklog.header(env.rank, self.run_id, self.time_base, self.scale))
        if self.is_main:
            outputs.write_metadata(self, "running")
            files.reserve(self.run_dir)  # room for the final status, however full the disk gets
            self.logger = loggers.make_logger(cfg, self.run_dir, self.run_id)
            print(f"hetbench: {describe(self.trainer.model)}; {env.world_size} ranks on "
                  f"{env.backend}; run dir {self.run_dir}", flush=True)

    def _gather_rank_info(self) -> list[dict]:
        me, real = self.fleet.ranks[self.env.rank], self.real
        emulating = self.pacer.active
        times = self.pacer.device if emulating else \
            _real_device_times(self.cfg, real, me.micro_batch, self.compute_precision)
        mine = {"rank": self.env.rank, "host": self.env.host, "local_rank": self.env.local_rank,
                "site": me.site, "device": real["catalog"] or real["name"],
                "real_device": real, "emulated_device": me.device if emulating else None,
                "configured_device": me.device,
                "device_times": times and times.as_dict(),
                "speed": times and 1000.0 / times.compute_ms,  # device steps/s of compute
                "clock_offset_s": self.offsets[self.env.rank]["offset_s"],
                "clock_uncertainty_s": self.offsets[self.env.rank]["uncertainty_s"],
                "threads": torch.get_num_threads(),
                **device_times.rank_basis(self.cfg, real, me.device if emulating else None,
                                 self.model_precision(), self.env.device.type),
                **boundness.verdict(self.trainer, times, self.env.device.type)}
        everyone = [None] * self.env.world_size
        dist.all_gather_object(everyone, mine)
        return everyone

    # -- the loop -----------------------------------------------------------------------------

    def train(self) -> None:
        if self.calibrate_only:
            return outputs.write_calibration(self)
        progress = console.Progress(self.cfg.train.steps, time_base=self.time_base) \
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
            record = self.trainer.step(step)
            # the D this step ran at: device ms = host / it
            record.update(kind=ranklog.STEP, time_scale=self.scale)
            self.pending.append(record)
            self.stop.check()
            if (step + 1) % every == 0 or step == last:
                window = self._gather_window()
                self._align_next_step()
                if progress:
                    window_mod.show_progress(progress, window, step)

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
        mine = torch.tensor([[float(rec[k]) for k in window_mod.GATHERED] for rec in self.pending],
                            dtype=torch.float64, device=self.env.device)  # (steps, fields)
        everyone = [torch.empty_like(mine) for _ in range(self.env.world_size)]
        dist.all_gather(everyone, mine)
        window = [window_mod.unpack(row) for rows in everyone for row in rows.tolist()]
        metrics.attribute(window)
        if self.pacer.timeline:
            lag.mark(window)  # every rank holds the same window: the same verdict everywhere
        else:  # no emulated timeline (real GPUs, unpaced CPU): nothing to fall behind
            for rec in window:
                rec["host_lagged"] = rec["lagged"] = False
        mine_attributed = [w for w in window if w["rank"] == self.env.rank]
        for rec, done in zip(self.pending, mine_attributed):
            for key in ("wait_ms", "transfer_ms", "host_lagged", "lagged"):
                rec[key] = done.get(key)
        self.log.write(self.pending)  # host time on disk; users read window (device time)
        self.pending = []
        self._rescale_after(window)
        window = timebase.to_device(window, self.scale)  # each record at the D it ran at
        if self.is_main:
            self.all_records.extend(window)
            self.logger.log_window(window[-1]["step"], window, self.ranks)
        return window

    def _rescale_after(self, window: list[dict]) -> None:
        """Lag that persisted over the window (host-time records) raises D for the rest of the
        run: every rank computes the same value from the same window, so no new sync point.
        Device time only (host time would change the results); emulation.rescale says where."""
        mode, pinned = self.cfg.emulation.rescale, self.cfg.emulation.time_scale is not None
        if not (self.pacer.timeline and self.time_base == timebase.DEVICE
                and (mode == "on" or (mode == "auto" and not pinned))):
            return
        new = lag.next_scale(window, self.scale, float(self.cfg.emulation.reference_scale))
        if new is None:
            return
        change = {"step": 1 + max(r["step"] for r in window), "from": self.scale, "to": new}
        self.scale_changes.append(change)
        self.scale = new
        self.pacer.set_time_scale(new)
        self.link.time_scale = self.trainer.faults.time_scale = new
        if self.is_main:
            print(f"hetbench: this machine fell behind the emulated timeline in steps "
                  f"{window[0]['step']}-{window[-1]['step']} (a busy host?): time dilation D "
                  f"{change['from']:.2f} -> {new:.2f} from step {change['step']}; results stay "
                  "in device ms", flush=True)

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
            files.release(self.run_dir)  # the reserved space takes the summary and metadata
            summary = outputs.summary(self, status)
            if status == "ok" and (why := outputs.degraded_because(self, summary)):
                status, error = "degraded", why
                summary["status"] = status
            if error:
                summary["error"] = error
            files.write_json_atomic(self.run_dir / "summary.json", summary)
            outputs.write_metadata(self, status, error)
            self.logger.finish(summary, status == "ok")
            outputs.print_summary(summary)
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

    def model_precision(self) -> str:
        """The device model's precision when emulating (CPU ranks compute in fp32 but time the
        configured precision); on real GPUs, the precision the fleet agreed to compute in."""
        if self.pacer.active or self.env.device.type != "cuda" or not self.compute_precision:
            return self.fleet.precision if self.fleet else device_times.precision(self.cfg)
        return self.compute_precision


ALIGN_MARGIN_S = 0.002  # lets every rank wake from the agreement before the common start


def _real_device_times(cfg, real: dict, batch: int, compute_precision: str):
    """The device model's times for the GPU this rank really runs on, at its micro-batch and the
    precision it computes in; None for a CPU or an unknown device."""
    if not lookup(real["catalog"]):
        return None
    work = dataclasses.replace(device_times.workload(cfg, batch, own=True),
                               precision=compute_precision)
    return devices.phase_times(real["catalog"], work)


def gather_objects(mine) -> list:
    everyone = [None] * dist.get_world_size()
    dist.all_gather_object(everyone, mine)
    return everyone
