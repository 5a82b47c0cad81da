from __future__ import annotations

import os
import socket
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from overrefusal.store import Store

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
XSTEST = SHARED / "data" / "xstest"

ALLOWED_SKIPS = ("root writes read-only folders", "GPU")
"""Skips that are right even in CI: the read-only-home test cannot work for root, and CI has no GPU."""


def _strict() -> bool:
    """In CI (``CI`` set) every dependency and ``../shared`` are there: a skip hides a broken setup."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false")


def _fail_skip(report: pytest.TestReport | pytest.CollectReport) -> None:
    if not (report.skipped and _strict()) or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr)
    if any(allowed in reason for allowed in ALLOWED_SKIPS):
        return
    report.outcome = "failed"
    report.longrepr = f"skipped in CI ({reason}): CI installs every extra and has ../shared, so this is a broken setup"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, object, None]:
    """With ``CI`` set, a skipped test fails (missing ``../shared`` data or extras must not pass silently)."""
    outcome = yield
    _fail_skip(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, object, None]:
    """Module-level skips (``importorskip``) fail under ``CI`` too."""
    outcome = yield
    _fail_skip(outcome.get_result())  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Assembled model files, shared by the whole session (assembly copies ~0.5 GB)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> None:
    """Every test gets its own state folder."""
    monkeypatch.setenv("OVERREFUSAL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OVERREFUSAL_MODELS", str(models_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any attempt to connect outside the loopback interface."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (
            host.startswith("127.") or host in ("localhost", "::1") or self.family == socket.AF_UNIX
        ):
            raise RuntimeError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def xstest_dir() -> Path:
    if not XSTEST.exists():
        pytest.skip("shared XSTest data not available")
    return XSTEST


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "store.sqlite3") as s:
        yield s
