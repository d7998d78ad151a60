"""Shared pytest fixtures."""

# -- fake Kaggle API (tests/kaggle_server.py): fixtures `kaggle_creds`, `kaggle_server`
try:
    from kaggle_server import kaggle_creds, kaggle_server  # noqa: F401  (tests/ on sys.path)
except ImportError:  # tests/ is a package
    from tests.kaggle_server import kaggle_creds, kaggle_server  # noqa: F401
