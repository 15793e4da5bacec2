"""Registry of pretraining objectives (name -> Objective factory taking keyword params)."""

from syncxr.objectives.contrastive import Objective
from syncxr.registry import Registry

OBJECTIVES: Registry[Objective] = Registry("objective")
