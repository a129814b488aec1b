"""PLACEHOLDER: being written."""

from .base_provider import BaseProvider


class MistralProvider(BaseProvider):
    label = "MistralProvider"
