"""hydra/launcher=slurm's launcher (configs/hydra/launcher/slurm.yaml): Hydra's submitit
SlurmLauncher, unchanged but for one thing: when sbatch refuses the sweep's jobs, the user reads
sbatch's own error and the settings to check, not a traceback through Hydra and submitit.
Imported only when that launcher is chosen (it needs the `cluster` extra)."""
from __future__ import annotations

from hydra.errors import CompactHydraException
from hydra_plugins.hydra_submitit_launcher import submitit_launcher

CHECK = ("check hydra.launcher.partition (sinfo lists them), hydra.launcher.gpus_per_node (null "
         "on CPU nodes), hydra.launcher.cpus_per_task and hydra.launcher.mem_gb against what a "
         "node has (scontrol show node)")


class SlurmRefused(CompactHydraException):
    """Hydra prints a CompactHydraException as its message alone, then exits with status 1."""


class SlurmLauncher(submitit_launcher.SlurmLauncher):
    def launch(self, job_overrides, initial_job_idx):
        from submitit.core.utils import FailedJobError

        try:
            return super().launch(job_overrides, initial_job_idx)
        except FailedJobError as err:  # sbatch exited non-zero: nothing was submitted
            raise SlurmRefused(f"hetbench: Slurm refused the sweep's jobs: {str(err).strip()}\n"
                               f"hetbench: {CHECK}") from None
