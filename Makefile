# Every target sets itself up first (scripts/setup.sh: .venv, torch, hetbench).
.PHONY: setup run test test-fast bench-overhead bench-fidelity bench-host bench-remedies bench-soak \
        bench-predict bench-predict-speed bench-network bench-device-model

setup:
	@scripts/setup.sh

run: setup
	.venv/bin/hetbench run $(ARGS)

# nccl-tests-style collective timings by scope, with a fit of each link (docs/collectives.md).
.PHONY: collectives
collectives: setup
	.venv/bin/hetbench collectives $(ARGS)

# The suite, multi-process runs included, less the heavy checks (~20 minutes on a 2-core laptop).
test: setup
	.venv/bin/python -m pytest -q -m "not heavy"

# The longest slow checks (marked heavy: a wheel in a fresh venv, a two-node Slurm, advise and
# combined strategies emulated, 16 ranks, a kept busy host, a stopped sweep; ~9 minutes). CI runs
# them after `make test`.
.PHONY: test-heavy
test-heavy: setup
	.venv/bin/python -m pytest -q -m heavy

# Unit tests only: seconds.
test-fast: setup
	.venv/bin/python -m pytest -q -m "not slow"

# The unit tests at the dependency floors (constraints/min.txt) in .venv-min (CONTRIBUTING.md).
.PHONY: test-min
test-min:
	scripts/test_min.sh $(ARGS)

bench-overhead: setup
	.venv/bin/python benchmarks/overhead.py

bench-fidelity: setup
	.venv/bin/python benchmarks/fidelity.py

bench-host: setup
	.venv/bin/python benchmarks/host_independence.py

bench-remedies: setup
	.venv/bin/python benchmarks/remedies.py

bench-soak: setup
	.venv/bin/python benchmarks/soak.py

bench-predict: setup
	.venv/bin/python benchmarks/predict_validation.py

bench-network: setup
	.venv/bin/python benchmarks/network_model.py

bench-predict-speed: setup
	.venv/bin/python benchmarks/predict_speed.py

bench-device-model: setup
	.venv/bin/python benchmarks/device_model.py
