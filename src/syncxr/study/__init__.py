"""The real-vs-synthetic-vs-mixed pretraining study (`syncxr study`): config, resumable steps, report.

    from syncxr.study import run_study
    manifest = run_study("configs/study/quick.yaml", "runs/study", ["train.steps=100"])
"""

from syncxr.study.config import StudyConfig, load_study_config
from syncxr.study.run import run_study

__all__ = ["StudyConfig", "load_study_config", "run_study"]
