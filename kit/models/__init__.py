"""The model zoo: `create_model(name, num_classes=..)` over a table of factories.

Importing this package registers the built-in entries; any timm model is `timm:<name>`.
"""

from kit.models import cnn, timm_zoo  # noqa: F401  (registers the entries)
from kit.models.zoo import create_model, describe, list_models, register

__all__ = ["create_model", "describe", "list_models", "register"]
