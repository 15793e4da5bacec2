"""Built-in QC features: shape, L2 norm, determinism, batch invariance, detectors that fire."""

import numpy as np
import pytest
from qc_toy import toy_chest

from syncxr.errors import UserError
from syncxr.qc.defects import apply_defect
from syncxr.qc.base import FEATURES, FeatureExtractor
from syncxr.qc.detectors import DETECTOR_NAMES
from syncxr.qc.features import FEATURE_DIM, BuiltinFeatures, describe


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [toy_chest(s) for s in range(6)]


def test_registered_and_conforms():
    ext = FEATURES.build("builtin")
    assert isinstance(ext, FeatureExtractor) and isinstance(ext, BuiltinFeatures)
    imgs = [toy_chest(s) for s in range(2)]
    np.testing.assert_array_equal(ext.features(imgs), BuiltinFeatures().features(imgs))


def test_shape_norm_dtype(images):
    f = BuiltinFeatures().features(images)
    assert f.shape == (6, FEATURE_DIM) and f.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    assert BuiltinFeatures().features([]).shape == (0, FEATURE_DIM)


def test_deterministic_and_batch_invariant(images):
    ext = BuiltinFeatures(batch_size=4)
    a = ext.features(images)
    b = ext.features(images)
    single = np.concatenate([ext.features([im]) for im in images])
    assert np.array_equal(a, b)
    np.testing.assert_allclose(a, single, atol=1e-6)


def test_other_sizes_are_resized(images):
    odd = np.asarray(images[0][:200, :180])
    big = np.kron(images[0], np.ones((2, 2), np.uint8))  # 512²: same picture, twice the size
    f = BuiltinFeatures().features([odd, big, images[0]])
    assert f.shape == (3, FEATURE_DIM)
    assert float(f[1] @ f[2]) > 0.99


def test_clean_images_are_alike_and_defects_are_not(images):
    ext = BuiltinFeatures()
    clean = ext.features(images)
    inverted = ext.features([apply_defect(im, "inverted", np.random.default_rng(0)) for im in images])
    assert (clean @ clean.T).min() > 0.6
    assert (clean @ inverted.T).max() < 0.5
    assert (inverted @ inverted.T).min() > 0.9


@pytest.mark.parametrize(
    "defect, detector",
    [("noisy", "noise"), ("overexposed", "dark"), ("foreign_object", "saturated_blob"),
     ("inverted", "inverted"), ("collimated", "light_border"), ("rotated", "dark_corners")],
)
def test_detectors_fire_on_their_defect(images, defect, detector):
    k = DETECTOR_NAMES.index(detector)
    clean = describe(images)["detectors"][:, k]
    bad = describe([apply_defect(im, defect, np.random.default_rng(i)) for i, im in enumerate(images)])["detectors"][:, k]
    assert clean.max() < 0.3
    assert np.median(bad) > 0.5


def test_bad_image_is_a_user_error():
    with pytest.raises(UserError, match="image 1"):
        BuiltinFeatures().features([np.zeros((32, 32), np.uint8), np.zeros((32, 32, 3), np.uint8)])
