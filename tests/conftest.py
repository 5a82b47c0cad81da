from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from overrefusal.store import Store

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
XSTEST = SHARED / "data" / "xstest"


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
