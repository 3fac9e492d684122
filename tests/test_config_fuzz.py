"""Property-based config fuzzing: override lists built from the schema's own keys, with wrong
types, out-of-range and non-finite numbers, unknown devices and groups, broken interpolations
and malformed YAML. `hetbench run` must answer each with exit 0 (valid: it would launch) or 2
(one message naming a key), never a traceback, and must launch nothing on 2.

Runs in-process through bench.cli.main with the launch replaced by a recorder: the same compose
and validation path as a user's command line, without starting torchrun."""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import subprocess
import typing
from unittest import mock

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench import cli, hardware
from bench import config as config_mod
from bench.driver import run as driver
from bench.rank import dist as dist_mod

# ---------------------------------------------------------------------------------------------
# The schema's keys and types, read from the dataclasses (nothing listed by hand).


def _unwrap(tp):
    """Optional[X] -> X; List[X] -> (list, X)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) is typing.Union:
        return _unwrap(args[0])
    if typing.get_origin(tp) in (list, typing.List):
        return (list, args[0])
    return tp


def schema_keys(cls=config_mod.HetbenchConfig, prefix: str = "") -> list[tuple[str, type]]:
    """[(dotted key, scalar type)]; list-of-dataclass fields give keys at indices 0 and 3."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp, path = _unwrap(hints[f.name]), f"{prefix}{f.name}"
        if isinstance(tp, tuple):
            for i in (0, 3):
                out += schema_keys(tp[1], f"{path}.{i}.")
        elif dataclasses.is_dataclass(tp):
            out += schema_keys(tp, path + ".")
        else:
            out.append((path, tp))
    return out


KEYS = schema_keys()
GROUPS = {"cluster": ["mixed4", "h100x2", "mixed16", "one_a100", "nope"],
          "network": ["campus", "rack", "continents", "lan9"],
          "model": ["tiny", "small", "huge"], "strategy": [*config_mod.STRATEGIES, "magic"],
          "logger": ["none", "wandb_offline", "stdout"], "experiment": ["remedies", "nope"]}
DEVICES = [*hardware.known_names(), "Z100", "h100", "H100 ", "TPUv5", "", "cpu"]

# Text that is not what the key wants: wrong types, YAML that does not parse, interpolations.
JUNK = ["abc", "", "null", "true", "False", "[1, 2]", "{a: 1}", "[{", "{a:", "]]", "'x",
        '"unterminated', "${nope}", "${train.steps}", "${oc.env:NO_SUCH_VAR}", "a=b", ":", "%",
        "1e999", "-0", "0x10", "1_000", "???", "[]", "{}", "~", "'", "\\", "🙂"]


def _number_text(x) -> str:
    return repr(x) if isinstance(x, float) else str(x)


ints = st.one_of(st.integers(-5, 40), st.integers(-10**6, 10**6), st.just(10**30))
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 200))


def value_for(tp) -> st.SearchStrategy[str]:
    """Mostly the right type (to reach validation), sometimes anything."""
    right = {int: ints, float: st.one_of(floats, ints), bool: st.booleans()}.get(tp)
    wrong = st.one_of(st.sampled_from(JUNK), ints, floats)
    if tp is str:
        return st.one_of(st.sampled_from(DEVICES + JUNK), st.text(max_size=8)).map(str)
    if right is None:
        return wrong.map(_number_text)
    return st.one_of(right, right, right, wrong).map(_number_text)


@st.composite
def key_override(draw) -> str:
    key, tp = draw(st.sampled_from(KEYS))
    prefix = draw(st.sampled_from([""] * 8 + ["+", "~"]))
    return f"{prefix}{key}={draw(value_for(tp))}"


@st.composite
def group_override(draw) -> str:
    group = draw(st.sampled_from(sorted(GROUPS)))
    return f"{group}={draw(st.sampled_from(GROUPS[group]))}"


@st.composite
def faults_override(draw) -> str:
    """A faults list, sometimes with a field left out, sometimes cut short (malformed YAML)."""
    entry = {"kind": draw(st.sampled_from(["slow", "crash", "hang", "explode", "1"])),
             "rank": draw(ints), "start_step": draw(ints), "end_step": draw(st.one_of(ints, st.just("null"))),
             "ms": draw(floats.map(_number_text))}
    keep = draw(st.lists(st.sampled_from(sorted(entry)), unique=True, max_size=5))
    text = "faults=[{" + ", ".join(f"{k}: {entry[k]}" for k in keep) + "}]"
    cut = draw(st.sampled_from([0, 0, 0, 0, 0, 1, 2, 7]))
    return text[:-cut] if cut else text


@st.composite
def device_override(draw) -> str:
    return f"cluster.groups.{draw(st.integers(0, 2))}.device={draw(st.sampled_from(DEVICES))}"


overrides = st.lists(st.one_of(key_override(), group_override(), faults_override(),
                               device_override()), min_size=1, max_size=4)

# ---------------------------------------------------------------------------------------------

ERROR = re.compile(r"^hetbench: error: (\S+?)=", re.M)
ALL_KEYS = {k for k, _ in KEYS} | set(GROUPS)


def _names_a_key(err: str, given: list[str]) -> bool:
    """The message's key is a schema key (indices as [i] or .i), a config group, `overrides`
    (Hydra's own message, which quotes the override it could not read) or a given key."""
    m = ERROR.search(err)
    if not m:
        return False
    key = re.sub(r"\[(\d+)\]", r".\1", m.group(1)).lstrip("+~")
    given_keys = {o.split("=", 1)[0].lstrip("+~") for o in given}
    bare = re.sub(r"\.\d+\.", ".0.", key)
    return (key in ALL_KEYS or bare in ALL_KEYS or key.split("/")[0] in GROUPS
            or key in given_keys or key == "overrides"
            or any(k.startswith(key + ".") or k.startswith(key + "[") for k in ALL_KEYS))


def run_cli(tmp_out: str, args: list[str]) -> tuple[int, str, list]:
    launched = []
    record = lambda *a, **k: launched.append(a) or 0  # noqa: E731
    err = io.StringIO()
    with mock.patch.object(driver, "launch", record), \
            mock.patch.object(subprocess, "run", record), \
            mock.patch.object(subprocess, "Popen", record), \
            mock.patch.object(dist_mod, "init", record), \
            contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(["run", f"out_root={tmp_out}", *args])
    return rc, err.getvalue(), launched


# 120 examples keep the default suite quick (~30 s); HETBENCH_FUZZ_EXAMPLES=2000 searches deeper.
FUZZ_EXAMPLES = int(os.environ.get("HETBENCH_FUZZ_EXAMPLES", "120"))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(args=overrides)
def test_fuzzed_overrides_give_0_or_2_and_never_a_traceback(tmp_path, args):
    out = tmp_path / "runs"  # shared by every example: an accepted one makes its run dir
    before = sorted(out.iterdir()) if out.exists() else []
    rc, err, launched = run_cli(str(out), args)  # any exception fails the test
    assert rc in (0, 2), (rc, err)
    if rc == 2:
        assert launched == [], f"launched on bad input {args}"
        assert err.count("hetbench: error:") == 1 and "Traceback" not in err, err
        assert _names_a_key(err, args), f"no key named for {args}: {err}"
        assert (sorted(out.iterdir()) if out.exists() else []) == before  # nothing written
    else:
        assert len(launched) == 1 and err == "", (args, err)


def test_schema_walk_sees_every_section():
    keys = {k for k, _ in KEYS}
    assert {"train.steps", "dist.timeout_s", "network.inter_site.latency_ms",
            "cluster.groups.0.device", "faults.3.ms", "emulation.workload.n_layer",
            "straggler_threshold"} <= keys


def test_values_fuzzing_found_are_now_named(tmp_path):
    """Inputs the fuzzer once turned into tracebacks or silent nonsense, each now a message."""
    cases = {"model.n_head=0": "model.n_head", "faults=[{kind: crash}]": "faults[0].rank",
             "dist.timeout_s=inf": "dist.timeout_s", "network.inter_site.latency_ms=nan":
             "network.inter_site.latency_ms", "train.seed=-1": "train.seed",
             "straggler_threshold=7": "straggler_threshold", "train.lr=-1": "train.lr",
             "run_id=../x": "run_id", "train.steps=${nope}": "train.steps",
             "cluster.groups.0.count=5000": "cluster.groups", "experiment=nope": "experiment"}
    for override, key in cases.items():
        rc, err, launched = run_cli(str(tmp_path / "runs"), [override])
        assert (rc, launched) == (2, []), (override, err)
        assert err.startswith(f"hetbench: error: {key}="), (override, err)
