"""The documentation stays true: every environment variable the settings read is in
.env.example and the README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = (ROOT / "chat_ai" / "settings.py").read_text()
ENV_NAMES = sorted(set(re.findall(r'env_(?:str|bool|int|float|list)\(\s*"([A-Z0-9_]+)"', SETTINGS)))


def test_settings_read_some_variables() -> None:
    assert "OPENAI_API_KEY" in ENV_NAMES and len(ENV_NAMES) > 20


@pytest.mark.parametrize("name", ENV_NAMES)
def test_env_example_lists_the_variable(name: str) -> None:
    text = (ROOT / ".env.example").read_text()
    assert re.search(rf"^#?\s*{name}=", text, re.MULTILINE), f"{name} missing from .env.example"


@pytest.mark.parametrize("name", ENV_NAMES)
def test_readme_documents_the_variable(name: str) -> None:
    assert name in (ROOT / "README.md").read_text(), f"{name} missing from README.md"


def test_readme_opens_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    head = text[: text.index("## ")]
    assert "make run" in head and "make test" in head
