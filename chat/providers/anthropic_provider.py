"""PLACEHOLDER: being written."""

from .base_provider import BaseProvider


class AnthropicProvider(BaseProvider):
    label = "AnthropicProvider"
