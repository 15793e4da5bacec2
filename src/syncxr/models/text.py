"""Text encoders: any BERT-style transformers model (AutoModel) or a built-in small BERT.

The built-in BERT gets a WordPiece tokenizer trained on the training corpus with `tokenizers`;
both kinds are saved with the checkpoint (model config + tokenizer files) so loading needs no
network and no original path.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from syncxr.errors import UserError
from syncxr.models.base import EncoderOutput

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

# name -> (hidden, layers, heads); intermediate = 4 * hidden as in BERT.
BUILTIN_BERTS = {
    "bert-tiny-builtin": (128, 2, 2),
    "bert-small-builtin": (256, 4, 4),
    "bert-base-builtin": (768, 12, 12),
}


def resolve_pooling(name: str, pooling: str) -> str:
    """'auto' -> 'mean' for the built-in (from scratch) BERTs, 'cls' for pretrained hf: models.

    Why: a BERT trained from scratch starts with an almost identical [CLS] state for every text
    (measured: mean cosine 1.000 between 32 different reports at init), so contrastive learning
    on [CLS] stalls; the mean of the word states differs between texts from the first step.
    Pretrained models (BioClinicalBERT, CXR-BERT) are used with their [CLS] state as usual.
    """
    if pooling != "auto":
        return pooling
    return "mean" if name in BUILTIN_BERTS else "cls"


class TextEncoder(nn.Module):
    """Transformer + projections. global = [CLS] state or the mean of the word states (`pooling`),
    local = word tokens (specials masked)."""

    def __init__(self, model: nn.Module, tokenizer, embed_dim: int, max_length: int, pooling: str = "cls") -> None:
        super().__init__()
        if pooling not in ("cls", "mean", "max"):
            raise ValueError(f"pooling must be 'cls', 'mean' or 'max', got {pooling!r}")
        self.pooling = pooling
        self.model = model
        self.tokenizer = tokenizer  # a transformers fast tokenizer, not a module
        self.max_length = max_length
        hidden = model.config.hidden_size
        self.global_proj = nn.Linear(hidden, embed_dim)
        self.local_proj = nn.Linear(hidden, embed_dim)
        specials = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
        self.register_buffer(
            "special_ids", torch.tensor(sorted(i for i in specials if i is not None)), persistent=False
        )
        # WordPiece continuation pieces ("##..."): with merge_subwords the word-level (local) features
        # are the SUM of each word's pieces, as GLoRIA and MGCA aggregate them.
        vocab = tokenizer.get_vocab()
        cont = torch.zeros(max(vocab.values(), default=0) + 1, dtype=torch.bool)
        cont[[i for t, i in vocab.items() if t.startswith("##")]] = True
        self.register_buffer("continuation", cont, persistent=False)
        self.merge_subwords = False

    def tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(
            list(texts), padding="longest", truncation=True, max_length=self.max_length,
            return_tensors="pt",
        )
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> EncoderOutput:
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        # hidden: (B, L, H); word mask excludes [CLS]/[SEP]/[PAD] so local losses see words only.
        words = attention_mask.bool() & ~torch.isin(input_ids, self.special_ids)
        if self.pooling == "cls":
            pooled = hidden[:, 0]  # (B, H)
        elif self.pooling == "max":  # ConVIRT: max over the word states
            valid = torch.where(words.any(1, keepdim=True), words, attention_mask.bool())  # (B, L)
            pooled = hidden.masked_fill(~valid.unsqueeze(-1), float("-inf")).amax(1)  # (B, H)
        else:
            w = words.unsqueeze(-1).to(hidden.dtype)  # (B, L, 1)
            pooled = (hidden * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, H)
        if self.merge_subwords:
            local, mask = self.merge_tokens(hidden, input_ids, words)  # (B, W, H), (B, W)
            return EncoderOutput(global_emb=self.global_proj(pooled), local=self.local_proj(local), mask=mask)
        return EncoderOutput(global_emb=self.global_proj(pooled), local=self.local_proj(hidden), mask=words)

    def merge_tokens(self, x: torch.Tensor, input_ids: torch.Tensor, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Sum the word pieces of each word: x (B, L, ...) per token, words (B, L) bool word-token mask
        -> (B, W, ...) per word (W = most words in a row) and its (B, W) mask. Specials and padding drop out."""
        ids = input_ids.clamp(0, self.continuation.numel() - 1)
        prev_word = torch.nn.functional.pad(words[:, :-1], (1, 0), value=False)  # (B, L) token before is a word token
        starts = words & ~(self.continuation[ids] & prev_word)  # a piece that begins a word
        index = torch.cumsum(starts.long(), dim=1) - 1  # (B, L) word number of each token
        n_words = starts.sum(1)  # (B,)
        width = max(int(n_words.max()), 1)
        index = torch.where(words, index, torch.zeros_like(index))  # non-words add zeros below
        flat = x * words.view(*words.shape, *([1] * (x.dim() - 2))).to(x.dtype)  # (B, L, ...)
        out = x.new_zeros((x.shape[0], width, *x.shape[2:]))
        out.scatter_add_(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(flat), flat)
        mask = torch.arange(width, device=x.device)[None, :] < n_words[:, None]  # (B, W)
        return out, mask

    def save(self, folder: Path) -> None:
        """Write the transformer config and tokenizer files (weights go in the model safetensors)."""
        folder.mkdir(parents=True, exist_ok=True)
        self.model.config.save_pretrained(str(folder))
        self.tokenizer.save_pretrained(str(folder))


def train_wordpiece(texts: Iterable[str], vocab_size: int, min_frequency: int = 2):
    """Build a lower-cased WordPiece vocabulary from `texts`; returns a BertTokenizerFast.

    The `tokenizers` WordPiece trainer breaks frequency ties in hash-map order, so the same
    corpus can give different vocabularies run to run. Exact resume, DDP ranks and reruns need
    identical ids, so the vocabulary is built deterministically with the same normaliser and
    pre-tokeniser: specials, every character (word-initial and ## continuation), then whole
    words by frequency (ties alphabetical). Rare words fall back to characters.
    """
    from collections import Counter

    from tokenizers import BertWordPieceTokenizer
    from transformers import BertTokenizerFast

    base = BertWordPieceTokenizer(lowercase=True)._tokenizer
    words: Counter[str] = Counter()
    for text in texts:
        if text:
            words.update(w for w, _ in base.pre_tokenizer.pre_tokenize_str(base.normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab = [*SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]
    ranked = sorted((w for w, n in words.items() if n >= min_frequency and len(w) > 1), key=lambda w: (-words[w], w))
    vocab += ranked[: max(vocab_size - len(vocab), 0)]
    tok = BertWordPieceTokenizer(vocab={t: i for i, t in enumerate(vocab)}, lowercase=True)
    return BertTokenizerFast(tokenizer_object=tok._tokenizer, do_lower_case=True)


def _no_pooler(config: Any) -> dict[str, Any]:
    """`add_pooling_layer=False` for model classes that take it (BERT-style): the pooler is
    unused, and without it every parameter gets a gradient. Asked of the class's signature, so a
    TypeError raised while building a model is never mistaken for "no such option"."""
    from transformers import MODEL_MAPPING

    try:
        cls = MODEL_MAPPING[type(config)]
    except KeyError:
        return {}
    return {"add_pooling_layer": False} if "add_pooling_layer" in inspect.signature(cls.__init__).parameters else {}


def _auto_model_from_config(config: Any) -> nn.Module:
    from transformers import AutoModel

    return AutoModel.from_config(config, **_no_pooler(config))


def build_text_encoder(
    name: str,
    embed_dim: int,
    max_length: int,
    corpus: Iterable[str] | None = None,
    vocab_size: int = 4000,
    dropout: float = 0.1,
    saved: Path | None = None,
    pooling: str = "auto",
) -> TextEncoder:
    """Build the text encoder `name`: a BUILTIN_BERTS key or "hf:<name-or-local-path>".

    saved: a folder written by TextEncoder.save (resume / load_pretrained): the architecture and
    tokenizer come from it and weights are loaded afterwards by the caller.
    corpus: training texts for the built-in WordPiece tokenizer (ignored when `saved`).
    """
    from transformers import AutoConfig, AutoTokenizer, BertConfig

    pooling = resolve_pooling(name, pooling)
    if saved is not None:
        config = AutoConfig.from_pretrained(str(saved))
        tokenizer = AutoTokenizer.from_pretrained(str(saved))
        return TextEncoder(_auto_model_from_config(config), tokenizer, embed_dim, max_length, pooling)
    if name in BUILTIN_BERTS:
        if corpus is None:
            raise ValueError("the built-in BERT needs a corpus to train its tokenizer")
        tokenizer = train_wordpiece(corpus, vocab_size)
        hidden, layers, heads = BUILTIN_BERTS[name]
        config = BertConfig(
            vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=4 * hidden,
            max_position_embeddings=max(512, max_length), hidden_dropout_prob=dropout,
            attention_probs_dropout_prob=dropout, pad_token_id=tokenizer.pad_token_id,
        )
        return TextEncoder(_auto_model_from_config(config), tokenizer, embed_dim, max_length, pooling)
    if name.startswith("hf:"):
        return _from_hub_or_path(name[3:], embed_dim, max_length, pooling)
    valid = ", ".join([*BUILTIN_BERTS, "hf:<name-or-path>"])
    raise UserError(f"unknown text encoder {name!r}; valid: {valid}")


def _from_hub_or_path(ref: str, embed_dim: int, max_length: int, pooling: str = "cls") -> TextEncoder:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(ref)
        config = AutoConfig.from_pretrained(ref)
        model = AutoModel.from_pretrained(ref, config=config, **_no_pooler(config))
    except OSError as exc:
        raise UserError(
            f"cannot load text model {ref!r}: {exc}. Give a local folder with config.json, "
            "weights and tokenizer files, or a hub name with network access / a filled HF cache."
        ) from exc
    return TextEncoder(model, tokenizer, embed_dim, max_length, pooling)
