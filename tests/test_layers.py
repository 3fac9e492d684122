"""The package keeps its layers (docs/design.md): no import cycle, no import sideways or upward,
lazy imports included; and the checker itself catches a planted cycle and a planted upward
import, so that a passing run means something."""
from __future__ import annotations

import shutil
from pathlib import Path

import import_rules

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"
MAX_LINES = 250
MAX_TOP_LEVEL = 8


def test_bench_keeps_its_layers():
    errors = import_rules.violations(ROOT, "bench", import_rules.read_layers(DESIGN))
    assert not errors, "\n".join(errors)


def _copy(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "bench", tmp_path / "bench",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_a_planted_upward_import_is_named_with_both_modules_and_the_rule(tmp_path):
    root = _copy(tmp_path)
    target = root / "bench" / "costs" / "balance.py"
    target.write_text(target.read_text() + "\n\ndef _late():\n    from bench.rank import model\n")
    errors = import_rules.violations(root, "bench", import_rules.read_layers(DESIGN))
    assert len(errors) == 1
    assert "bench.costs.balance" in errors[0] and "bench.rank.model" in errors[0]
    assert "layer 5 `bench.rank` is above layer 2 `bench.costs`" in errors[0]


def test_a_planted_sideways_import_is_refused(tmp_path):
    root = _copy(tmp_path)
    target = root / "bench" / "driver" / "command.py"
    target.write_text(target.read_text() + "\nfrom bench.rank import dist  # noqa\n")
    errors = import_rules.violations(root, "bench", import_rules.read_layers(DESIGN))
    assert len(errors) == 1 and "is beside layer 5" in errors[0]


def test_a_planted_cycle_is_named(tmp_path):
    root = _copy(tmp_path)
    for name, other in (("a", "b"), ("b", "a")):
        (root / "bench" / "costs" / f"cyc_{name}.py").write_text(
            f"def f():\n    from bench.costs import cyc_{other}\n")
    errors = import_rules.violations(root, "bench", import_rules.read_layers(DESIGN))
    assert errors == ["import cycle among bench.costs.cyc_a, bench.costs.cyc_b: break it by "
                      "moving what both need into a lower module"]


def test_a_module_outside_the_table_is_named(tmp_path):
    root = _copy(tmp_path)
    (root / "bench" / "stray.py").write_text("")
    errors = import_rules.violations(root, "bench", import_rules.read_layers(DESIGN))
    assert errors == ["bench.stray: not in the layer table of docs/design.md; add its package there"]


def test_modules_stay_small_and_the_top_level_holds_few():
    long = {str(p.relative_to(ROOT)): n for p in (ROOT / "bench").rglob("*.py")
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by responsibility): {long}"
    top = sorted(p.name for p in (ROOT / "bench").glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL, f"bench/ top level: {top}; move modules into a subpackage"
