"""Procedural frontal PA chest radiographs with per-finding masks (the built-in generator).

PA convention: the PATIENT'S RIGHT IS IMAGE LEFT. `FindingSpec(laterality="left")` is drawn on
the image's right half.
"""

from syncxr.image.phantom.render import cardiothoracic_ratio, render_phantom
from syncxr.image.phantom.spec import FINDINGS, FindingSpec

__all__ = ["FINDINGS", "FindingSpec", "cardiothoracic_ratio", "render_phantom"]
