"""PLACEHOLDER: being written."""

from .base_provider import BaseProvider


class LocalProvider(BaseProvider):
    label = "LocalProvider"
