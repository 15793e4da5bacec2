"""Text representations for the privacy audit: word n-gram sets and pluggable embedders.

`TEXT_EMBEDDERS` (one line per embedder) turns reports into L2-normalised rows whose dot product
is a cosine similarity. The default, `tfidf`, needs nothing beyond scikit-learn and is fitted on
both sides of the audit; `transformers` mean-pools a sentence encoder's last hidden states and is
only used when named, with weights the user gives (a local folder or hub name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import scipy.sparse as sp

from syncxr.errors import UserError
from syncxr.registry import Registry

TOKEN = r"(?u)\b\w+\b"  # every word, one-letter ones too ("a 2 cm nodule")


class TextEmbedder(Protocol):
    backend_id: str

    def fit(self, texts: Sequence[str]) -> "TextEmbedder":
        """Learn what the representation needs from the texts of both sides (no-op for a model)."""
        ...

    def embed(self, texts: Sequence[str]):
        """(N, D) L2-normalised rows, dense numpy or scipy sparse."""
        ...


TEXT_EMBEDDERS: Registry[TextEmbedder] = Registry(
    "text embedder",
    {
        "tfidf": "syncxr.audit.text:TfidfEmbedder",
        "transformers": "syncxr.audit.text:TransformersEmbedder",
    },
    requires={"transformers": ("torch", "transformers")},
)


def ngram_sets(a: Sequence[str], b: Sequence[str], n: int = 3) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """Binary (rows, vocabulary) matrices of the lower-cased word n-grams of each text, over one
    vocabulary for both sides."""
    from sklearn.feature_extraction.text import CountVectorizer

    if n < 1:
        raise UserError(f"n-gram size must be >= 1; got {n}")
    vec = CountVectorizer(token_pattern=TOKEN, ngram_range=(n, n), binary=True, lowercase=True, dtype=np.float32)
    try:
        vec.fit(list(a) + list(b))
    except ValueError:  # every text shorter than n words
        return sp.csr_matrix((len(a), 1), dtype=np.float32), sp.csr_matrix((len(b), 1), dtype=np.float32)
    return vec.transform(a).tocsr(), vec.transform(b).tocsr()


class TfidfEmbedder:
    """TF-IDF of word 1-2 grams (sublinear tf), L2-normalised: cosine = shared, rare wording."""

    backend_id = "tfidf-word-1-2"

    def __init__(self, ngram_max: int = 2, min_df: int = 1) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.vec = TfidfVectorizer(token_pattern=TOKEN, ngram_range=(1, ngram_max), sublinear_tf=True,
                                   min_df=min_df, dtype=np.float32)

    def fit(self, texts: Sequence[str]) -> "TfidfEmbedder":
        try:
            self.vec.fit(list(texts))
        except ValueError as e:
            raise UserError(f"tfidf text embedder: nothing to learn from the reports ({e})") from None
        return self

    def embed(self, texts: Sequence[str]) -> sp.csr_matrix:
        return self.vec.transform(list(texts)).tocsr()


class TransformersEmbedder:
    """Mean-pooled last hidden states of a transformers text encoder (e.g. a sentence encoder or
    CXR-BERT), L2-normalised. `model`: a local folder or hub name; nothing is fetched unless named."""

    def __init__(self, model: str | Path, device: str = "cpu", batch_size: int = 32, max_length: int = 256) -> None:
        try:
            import torch  # noqa: F401  (a clear message when the train extra is missing)
            from transformers import AutoModel, AutoTokenizer
        except ImportError as e:
            from syncxr.fsio import missing_dependency

            raise missing_dependency("the transformers text embedder", e, "train") from None
        try:
            self.tok = AutoTokenizer.from_pretrained(str(model))
            self.model = AutoModel.from_pretrained(str(model)).to(device).eval()
        except (OSError, ValueError) as e:
            raise UserError(f"could not load a text encoder from {str(model)!r}: {e}") from None
        limits = [max_length, getattr(self.tok, "model_max_length", max_length),
                  getattr(self.model.config, "max_position_embeddings", max_length)]
        # Reports longer than the encoder's positions are truncated to fit it.
        self.device, self.batch_size, self.max_length = device, batch_size, int(min(limits))
        self.backend_id = f"transformers:{Path(str(model)).name}"

    def fit(self, texts: Sequence[str]) -> "TransformersEmbedder":
        return self

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        out = []
        texts = list(texts)
        for lo in range(0, len(texts), self.batch_size):
            enc = self.tok(texts[lo : lo + self.batch_size], padding=True, truncation=True,
                           max_length=self.max_length, return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state  # (B, T, D)
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            out.append(torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 1), np.float32)


def text_embedder(name: str = "tfidf", model: str | None = None, device: str = "cpu") -> TextEmbedder:
    """An embedder from TEXT_EMBEDDERS; `transformers` needs `model`."""
    if name == "transformers" and model is None:
        raise UserError("--text-embedder transformers needs --text-model (a local folder or hub name)")
    return TEXT_EMBEDDERS.create(name, {"model": model, "device": device} if model else {})
