"""The one image reader: PNG/JPEG bytes or a file -> (H, W) uint8 grayscale.

Used by every part that reads a user's image (qc build-bank, qc judge, the training pair sources,
the evaluation loaders), so a 16-bit PNG looks the same everywhere: 8-bit data passes through,
wider data (16-bit PNG, float TIFF) is windowed between its 0.5th and 99.5th percentiles instead
of being clipped. Images above MAX_PIXELS are refused before they are decoded (a 48 KB PNG can
claim 40,000 x 40,000 pixels): the caller skips the file with the reason and carries on.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MAX_PIXELS = 8192 * 8192  # a large CXR is about 4,000 x 5,000; anything above is not a radiograph
WIDE_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N", "I", "F"})


class ImageReadError(ValueError):
    """An image file that cannot be used; `reason` is the short tag callers count skips under."""

    def __init__(self, message: str, reason: str = "unreadable_image") -> None:
        super().__init__(message)
        self.reason = reason


def to_uint8(arr: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """(H, W) array of any integer/float dtype -> (H, W) uint8.

    uint8 passes through, as do 8-bit values in a wider container. Wider integers holding values
    above 255 (16-bit PNG, 12-bit DICOM) and floats are windowed linearly between their 0.5th and
    99.5th percentiles: burned-in text and collimator edges sit at the extremes, so a plain
    min-max window would leave the lungs in a few grey levels. A constant image becomes zeros.
    """
    if arr.dtype == np.bool_:
        raise ImageReadError(f"{path}: is a boolean mask, not a radiograph", "not_a_radiograph")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.integer) and arr.size and arr.min() >= 0 and arr.max() <= 255:
        return arr.astype(np.uint8)
    a = arr.astype(np.float64)
    lo, hi = np.percentile(a, [0.5, 99.5]) if a.size else (0.0, 0.0)
    if hi <= lo:
        lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    log.debug("%s: %s image windowed from [%g, %g] to 0..255", path, arr.dtype, lo, hi)
    return np.round(np.clip((a - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def read_gray(source: bytes | str | Path, name: str | None = None, max_pixels: int | None = None) -> np.ndarray:
    """Decode PNG/JPEG bytes or an image file into (H, W) uint8 grayscale.

    Raises ImageReadError (a ValueError) with reason 'too_many_pixels' for an image above
    `max_pixels` (default MAX_PIXELS; checked from the header, before decoding), 'not_found' for
    a missing file, else 'unreadable_image'.
    """
    from PIL import Image

    label = name or (str(source) if not isinstance(source, bytes) else "<image bytes>")
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if not isinstance(source, bytes) and not Path(source).is_file():
        raise ImageReadError(f"{label}: image not found", "not_found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as im:
                w, h = im.size
                if w * h > limit:
                    raise _too_big(label, w, h, limit)
                im.load()
                arr = np.asarray(im) if im.mode in WIDE_MODES else np.asarray(im.convert("L"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageReadError(f"{label}: {e}; refusing to decode it (limit {limit:,} pixels)", "too_many_pixels") from None
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, MemoryError) as e:
        raise ImageReadError(f"{label}: cannot read as an image ({e}); expected a PNG/JPEG file") from None
    if arr.ndim != 2:
        raise ImageReadError(f"{label}: expected a grayscale image, got shape {arr.shape}")
    return to_uint8(np.array(arr), label)


def _too_big(label: str, w: int, h: int, limit: int) -> ImageReadError:
    return ImageReadError(
        f"{label}: {w} x {h} = {w * h:,} pixels, above the limit of {limit:,} "
        "(a decompression bomb or not a radiograph); skipped",
        "too_many_pixels",
    )
