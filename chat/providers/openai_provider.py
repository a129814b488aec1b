"""PLACEHOLDER: being written."""

from .base_provider import BaseProvider


class OpenAIProvider(BaseProvider):
    label = "OpenAIProvider"
class OpenAICompatibleProvider(OpenAIProvider):
    pass
