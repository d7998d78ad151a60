"""kit: from raw contest audio to a ranked Kaggle submission, reproducibly."""

__version__ = "0.1.0"
