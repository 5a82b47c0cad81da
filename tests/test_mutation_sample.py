"""A random sample of the core's mutants, each killed by a test or listed as equivalent (issue 18).

`make mutation` runs every mutant of the core modules (about ten minutes on two free cores), which is
too slow for every CI run. This test runs a sample of them with the same tool and configuration, so a
change that adds code no test pins (a new mutant that survives) or makes a listed equivalent stale
turns CI red. The sample follows pytest-randomly's seed, printed in the session header: rerun a
failure with ``--randomly-seed=N``, and see the mutant with ``mutmut show NAME``.
"""

from __future__ import annotations

import importlib.util
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = int(os.environ.get("OVERREFUSAL_MUTATION_SAMPLE", "40"))

pytestmark = pytest.mark.slow


def _report_module() -> ModuleType:
    """`scripts/mutation_report.py`, whose reading of the equivalents list and statuses this test shares."""
    spec = importlib.util.spec_from_file_location("mutation_report", ROOT / "scripts" / "mutation_report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mutmut(project: Path, *names: str) -> None:
    """Run ``mutmut run NAMES`` in ``project``; fail the test with its output when it fails."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    # the inner pytest runs get their own temporary root: pytest prunes old sessions' folders there
    (project / "tmp").mkdir(exist_ok=True)
    env["TMPDIR"] = str(project / "tmp")
    done = subprocess.run(
        [sys.executable, "-m", "mutmut", "run", "--max-children", "2", *names],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"mutmut run failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


def test_a_sample_of_mutants_is_killed_or_listed(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    report = _report_module()
    project = tmp_path / "project"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "mutants")
    shutil.copytree(ROOT / "src", project / "src", ignore=ignore)
    shutil.copytree(ROOT / "tests", project / "tests", ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", project / "pyproject.toml")

    # the smallest module first: this generates every module's mutants and runs the clean tests
    _mutmut(project, "overrefusal.hashing*")
    codes = {name: code for name, (_, code) in report.results(project).items()}
    listed = report.equivalents()
    stale = sorted(set(listed) - set(codes))
    assert not stale, f"tests/mutation_equivalents.txt lists mutants that no longer exist: {stale}"

    seed = request.config.getoption("randomly_seed", default=None)
    rng = random.Random(seed if isinstance(seed, int) else 18)
    unchecked = sorted(name for name, code in codes.items() if code is None)
    sample = rng.sample(unchecked, min(SAMPLE, len(unchecked)))
    _mutmut(project, *sample)

    codes = {name: code for name, (_, code) in report.results(project).items()}
    checked = [name for name in codes if name.startswith("overrefusal.hashing.")] + sample
    status = {name: report.status_by_exit_code[codes[name]] for name in checked}
    assert "not checked" not in status.values()
    alive = sorted(f"{name} ({s})" for name, s in status.items() if s not in report.KILLED and name not in listed)
    assert not alive, (
        f"{len(alive)} of {len(checked)} sampled mutants survived: kill each with a test, or list it with"
        f" its reason in tests/mutation_equivalents.txt (`mutmut show NAME` prints it): {alive}"
    )
