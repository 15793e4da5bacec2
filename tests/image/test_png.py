import io

import numpy as np
import pytest
from PIL import Image

from syncxr.image.png import encode_gray_png


@pytest.mark.parametrize("shape", [(1, 1), (7, 5), (256, 256), (300, 128)])
def test_round_trip_through_pillow(shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=shape, dtype=np.uint8)
    img[: shape[0] // 2] = np.sort(img[: shape[0] // 2], axis=1)  # some smooth rows, some noise
    back = Image.open(io.BytesIO(encode_gray_png(img)))
    assert back.mode == "L" and back.size == (shape[1], shape[0])
    np.testing.assert_array_equal(np.array(back), img)


def test_rejects_colour_input():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        encode_gray_png(np.zeros((4, 4, 3), np.uint8))
