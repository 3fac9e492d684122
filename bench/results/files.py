"""The files a run leaves, written safely and read back: atomic JSON and text writes (no half
files, no temporaries left on a full disk, the umask's mode), JSON reads, the allow-listed
environment recorded in metadata.json."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

# Environment variables worth recording. An allow-list, never a dump: a dump leaks keys.
ENV_ALLOW = ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_PORT", "TORCHELASTIC_RUN_ID",
             "HETBENCH_RUN_ID", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES", "NCCL_DEBUG",
             "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE", "NCCL_ALGO", "NCCL_PROTO", "GLOO_SOCKET_IFNAME",
             "SLURM_JOB_ID", "SLURM_NNODES", "SLURM_JOB_NODELIST", "HETBENCH_RDZV_ENDPOINT",
             "WANDB_MODE")


def write_json_atomic(path: Path, obj) -> None:
    """Write JSON to a temporary file in the same folder, then rename: readers never see half a
    file."""
    text = json.dumps(obj, indent=2, default=_jsonable) + "\n"  # a bad value fails before any write
    write_text_atomic(path, text)


def write_text_atomic(path: Path, text: str) -> None:
    """write_json_atomic for text (sweep.csv). The file gets the mode a plain open() would give
    (0666 less the umask): mkstemp's 0600 would hide a summary from colleagues sharing runs/."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        # A full disk (or anything else) leaves the old file whole and no temporary behind.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


RESERVE_NAME = ".status-reserve"
RESERVE_BYTES = 256 * 1024  # summary.json + metadata.json of a few hundred ranks, with room


def reserve(run_dir: Path, nbytes: int = RESERVE_BYTES) -> None:
    """Hold disk space for the run's last words: a file of real blocks (zeros written, not a
    sparse hole) that release() deletes right before the final summary and metadata are
    written, so that a disk the rank logs filled still takes them. Best effort: a disk already
    too full to reserve on gets no reserve."""
    path = Path(run_dir) / RESERVE_NAME
    try:
        with open(path, "wb") as f:
            f.write(b"\0" * nbytes)
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        with contextlib.suppress(OSError):
            path.unlink()


def release(run_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (Path(run_dir) / RESERVE_NAME).unlink()


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text())


def allowed_env() -> dict:
    return {k: os.environ[k] for k in ENV_ALLOW if k in os.environ}


def _umask() -> int:
    """The process's umask, read without changing it where Linux says it (/proc, since 4.7):
    setting it to read it would open a window in which another thread's files get mode 0666."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it; set straight back
    os.umask(mask)
    return mask
