"""syncxr: synthetic chest X-ray image-report datasets and MedVLP pretraining/evaluation."""

__version__ = "0.1.0"
