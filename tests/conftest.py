"""Shared test setup: offline, deterministic, quiet."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# One BLAS/OpenMP thread: xdist workers already fill the cores, and on a busy machine spinning
# OpenMP threads made the tiny diffusion tests ~20x slower (sd batch test: 36 s -> 1.6 s, 2 -> 1).
os.environ.setdefault("OMP_NUM_THREADS", "1")
