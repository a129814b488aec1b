"""PLACEHOLDER: being written."""

from .base_provider import BaseProvider


class GoogleProvider(BaseProvider):
    label = "GoogleProvider"
