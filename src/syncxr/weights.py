"""Fingerprints of model weights, computed without loading the model (the parent process of a GPU
run never loads one): the manifest records them, and a resume with other weights is refused.

- A local folder (or file): sha256 over, for every file in sorted relative-path order, its path,
  its size, and either its whole content (files up to 1 MiB: configs, tokenizers, scheduler,
  vocabularies) or, for larger files, a sample: a safetensors file's JSON header (tensor names,
  dtypes, shapes, offsets) plus the first and last 64 KiB of its payload; any other big file's
  first and last 64 KiB. Multi-GB payloads are never read in full. Moving or copying the folder
  does not change the fingerprint; editing a config, a header, or a fine-tune's weights does.
- A hub name ("org/name" or "org/name@revision"): the commit the local Hugging Face cache
  resolved it to (offline, no request), "hub:org/name@<commit>"; when the cache has no copy,
  "hub:org/name:unresolved" (the caller decides whether that is good enough).
"""

from __future__ import annotations

import hashlib
import os
import re
import struct
from pathlib import Path

SMALL_FILE = 1 << 20  # hashed whole
SAMPLE = 1 << 16  # bytes read at each end of a large file
_SKIP_DIRS = {".git", ".cache", "__pycache__"}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(?:@[\w./-]+)?$")


def fingerprint(model: str | Path) -> str:
    """'sha256:<hex>' for a local folder or file, 'hub:<name>@<commit>' for a hub name found in
    the local cache, 'hub:<name>:unresolved' otherwise. Never loads the model or downloads."""
    path = Path(str(model)).expanduser()
    if path.exists():
        return "sha256:" + _hash_local(path)
    name = str(model)
    if _HUB_NAME.match(name):
        repo, _, revision = name.partition("@")
        commit = cached_commit(repo, revision or "main")
        return f"hub:{repo}@{commit}" if commit else f"hub:{repo}:unresolved"
    return f"missing:{name}"


def is_resolved(fp: str) -> bool:
    """Whether a fingerprint pins the weights (False for unresolved hub names and missing paths)."""
    return fp.startswith("sha256:") or (fp.startswith("hub:") and "@" in fp)


def _hash_local(path: Path) -> str:
    digest = hashlib.sha256()
    files = [(path.name, path)] if path.is_file() else list(_walk(path))
    for rel, file in files:
        size = file.stat().st_size
        digest.update(f"{rel}\0{size}\0".encode())
        digest.update(_file_digest(file, size))
    return digest.hexdigest()


def _walk(root: Path) -> list[tuple[str, Path]]:
    """(relative posix path, path) of every file under root, sorted; follows the HF cache's
    symlinks to blobs; skips .git and cache folders."""
    out = []
    for folder, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        for name in names:
            file = Path(folder) / name
            if file.is_file():
                out.append((file.relative_to(root).as_posix(), file))
    return sorted(out)


def _file_digest(file: Path, size: int) -> bytes:
    with open(file, "rb") as f:
        if size <= SMALL_FILE:
            return hashlib.sha256(f.read()).digest()
        part = hashlib.sha256()
        payload_start = 0
        if file.suffix == ".safetensors":
            header, payload_start = _safetensors_header(f, size)
            part.update(b"header\0" + header)
        f.seek(payload_start)
        part.update(f.read(SAMPLE))
        f.seek(max(payload_start, size - SAMPLE))
        part.update(f.read(SAMPLE))
        return part.digest()


def _safetensors_header(f, size: int) -> tuple[bytes, int]:
    """(header JSON bytes, payload offset); a malformed file gives its first bytes instead."""
    raw = f.read(8)
    if len(raw) < 8:
        return raw, 0
    (n,) = struct.unpack("<Q", raw)
    if n > min(size - 8, 100 << 20):
        return raw, 0
    return f.read(n), 8 + n


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache folder, from the environment as huggingface_hub reads it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def cached_commit(repo: str, revision: str = "main") -> str | None:
    """The commit a revision of `repo` resolves to in the local cache (refs/<revision>), or the
    revision itself when it is a commit hash with a snapshot there; None when not cached."""
    root = hf_cache_dir() / ("models--" + repo.replace("/", "--"))
    if re.fullmatch(r"[0-9a-f]{40}", revision):
        return revision if (root / "snapshots" / revision).is_dir() else None
    ref = root / "refs" / revision
    try:
        commit = ref.read_text().strip()
    except OSError:
        return None
    return commit if (root / "snapshots" / commit).is_dir() else None


def fingerprints(models: dict[str, str | Path]) -> dict[str, str]:
    """fingerprint() of each named model (e.g. {"extract": ..., "image": ...}), for a manifest."""
    return {key: fingerprint(value) for key, value in models.items()}


def describe(fp: str) -> str:
    """A short human form for messages: 'sha256:0123abcd…' or the hub form as is."""
    return fp[:15] + "…" if fp.startswith("sha256:") else fp


__all__ = ["fingerprint", "fingerprints", "is_resolved", "cached_commit", "hf_cache_dir", "describe"]
