"""Where the configs live (bench/configs/ in the package, the checkout's configs/ link to it,
HETBENCH_CONFIG_DIR over both), and hetbench installed outside the checkout: a wheel built from
the checkout, installed into a fresh virtual environment, runs an experiment and reports on it
from a folder that is not the checkout, with no PYTHONPATH and no HETBENCH_CONFIG_DIR, so every
config it composes comes from the wheel's own bench/configs/. TORCH_SPEC picks the torch it
installs (as scripts/setup.sh does)."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import yaml

from bench import config as config_mod

ROOT = Path(__file__).resolve().parents[1]
# What the wheel is built from: the files docker/Dockerfile copies, nothing else of the checkout.
SOURCES = ("pyproject.toml", "README.md", "bench", "hydra_plugins")
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")
RUN = ["train.steps=5", "train.warmup_steps=1", "logger=none"]
# Where the installed modules and configs are; importing the ranks' modules (torch) here, in one
# process, also writes their bytecode before four ranks start at once.
WHERE = ("import bench, bench.config, bench.rank.main, hydra_plugins.hetbench as p; "
         "print(bench.__file__); print(bench.config.config_dir()); print(p.__file__)")


def _clean_env(venv: Path) -> dict:
    """The environment a user of the installed wheel has: the venv first on PATH, nothing that
    points back at the checkout (PYTHONPATH, HETBENCH_CONFIG_DIR) or at another venv, and
    Python's default of caching bytecode (the install skips compiling all of torch up front)."""
    drop = {"PYTHONPATH", "HETBENCH_CONFIG_DIR", "VIRTUAL_ENV", "PYTHONHOME",
            "PYTHONDONTWRITEBYTECODE"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _check(cmd: list, timeout: float, **kw) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          timeout=timeout, **kw)
    assert proc.returncode == 0, f"{' '.join(map(str, cmd))}\n{(proc.stdout + proc.stderr)[-4000:]}"
    return proc


def _build_wheel(tmp: Path, env: dict) -> Path:
    """The wheel, built from a copy of SOURCES (the build's own files stay out of the checkout);
    with this interpreter's setuptools when it has one, so no build environment is fetched."""
    src = tmp / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            src.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    isolation = [] if importlib.util.find_spec("setuptools") is None else ["--no-build-isolation"]
    _check([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", *isolation, "-w", tmp / "dist",
            src], timeout=300, env=env)
    (wheel,) = (tmp / "dist").glob("hetbench-*.whl")
    return wheel


def _install(venv: Path, wheel: Path, env: dict) -> None:
    """torch and the wheel (its dependencies from the indexes pip is configured with) in a fresh
    venv. Where this pip can install into another interpreter (--python, pip 22.3), the venv
    gets no pip of its own, which is quicker to make. --no-compile: byte-compiling all of torch
    at install takes minutes; the first import caches what a run uses instead (_clean_env)."""
    python = venv / "bin" / "python"
    own_pip = tuple(map(int, importlib.metadata.version("pip").split(".")[:2])) < (22, 3)
    _check([sys.executable, "-m", "venv", *([] if own_pip else ["--without-pip"]), venv],
           timeout=300, env=env)
    pip = [python, "-m", "pip"] if own_pip else [sys.executable, "-m", "pip", "--python", python]
    _check([*pip, "install", "-q", "--no-compile", TORCH_SPEC, wheel], timeout=900, env=env)


def test_the_configs_live_in_the_package_and_the_top_level_folder_links_there(monkeypatch):
    import bench

    monkeypatch.delenv("HETBENCH_CONFIG_DIR", raising=False)
    inside = Path(bench.__file__).resolve().parent / "configs"
    assert config_mod.config_dir() == inside and (inside / "config.yaml").is_file()
    assert (ROOT / "configs").is_symlink() and (ROOT / "configs").resolve() == inside


def test_hetbench_config_dir_replaces_the_packaged_configs(tmp_path, monkeypatch):
    mine = tmp_path / "my-configs"
    shutil.copytree(config_mod.config_dir(), mine)
    text = (mine / "config.yaml").read_text()
    (mine / "config.yaml").write_text(text.replace("  steps: 200\n", "  steps: 321\n", 1))
    monkeypatch.setenv("HETBENCH_CONFIG_DIR", str(mine))
    assert config_mod.config_dir() == mine
    assert config_mod.compose(["experiment=none"]).train.steps == 321


def test_a_config_dir_without_config_yaml_is_refused_naming_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("HETBENCH_CONFIG_DIR", str(tmp_path))
    with pytest.raises(config_mod.ConfigError, match="HETBENCH_CONFIG_DIR") as err:
        config_mod.compose([])
    assert err.value.value == str(tmp_path) and "config.yaml" in err.value.fix


@pytest.mark.slow
@pytest.mark.heavy
def test_a_wheel_installed_away_from_the_checkout_runs_and_reports(tmp_path):
    venv, elsewhere, out_root = tmp_path / "venv", tmp_path / "elsewhere", tmp_path / "runs"
    elsewhere.mkdir()
    env = _clean_env(venv)
    times = {"start": time.monotonic()}

    wheel = _build_wheel(tmp_path / "build", env)
    names = set(zipfile.ZipFile(wheel).namelist())
    packaged = {p.relative_to(ROOT).as_posix()
                for p in (ROOT / "bench" / "configs").rglob("*.yaml")}
    assert packaged and packaged <= names, sorted(packaged - names)
    assert "hydra_plugins/hetbench/_slurm_launcher.py" in names
    times["wheel"] = time.monotonic()
    _install(venv, wheel, env)
    times["install"] = time.monotonic()

    where = _check([venv / "bin" / "python", "-c", WHERE], 120, env=env, cwd=elsewhere)
    bench_file, configs, plugins = map(Path, where.stdout.split())
    for path in (bench_file, configs, plugins):
        assert path.resolve().is_relative_to(venv.resolve()) and not path.is_relative_to(ROOT), path
    assert configs.resolve() == bench_file.resolve().parent / "configs"

    # The experiment check lists the installed experiment files.
    bad = subprocess.run([venv / "bin" / "hetbench", "config", "experiment=no_such"],
                         capture_output=True, text=True, timeout=120, env=env, cwd=elsewhere)
    assert bad.returncode == 2 and "latency_sweep" in bad.stderr, bad.stderr
    times["checks"] = time.monotonic()

    _check([venv / "bin" / "hetbench", "run", *RUN, f"out_root={out_root}"], 600, env=env,
           cwd=elsewhere)
    times["run"] = time.monotonic()
    (run_dir,) = [p for p in out_root.iterdir() if p.is_dir() and not p.is_symlink()]
    _check([venv / "bin" / "hetbench", "report", run_dir], 300, env=env, cwd=elsewhere)
    times["report"] = time.monotonic()

    summary = json.loads((run_dir / "summary.json").read_text())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert summary["status"] == "ok" and config["train"]["steps"] == 5
    assert summary["world_size"] == sum(g["count"] for g in config["cluster"]["groups"])
    for name in ("report.html", "analysis.json", "trace.json"):
        assert (run_dir / name).stat().st_size > 0, name
    steps = list(times.items())
    print("install test timings (s): " + ", ".join(
        f"{name} {t - prev:.1f}" for (_, prev), (name, t) in zip(steps, steps[1:])))
    shutil.rmtree(venv)  # a torch install is large; a failure keeps it for a look
