"""hetbench's Hydra launchers. Hydra instantiates a launcher only from a class under the
`hydra_plugins` namespace package, so hydra/launcher=slurm's class lives here
(_slurm_launcher.py). The leading underscore keeps Hydra's plugin scan from importing it on
every start (it needs the `cluster` extra); bench.sweeps.multirun registers it when a sweep runs."""
