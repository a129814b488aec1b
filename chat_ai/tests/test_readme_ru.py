"""README.ru.md, the Russian README, stays in step with README.md: both name the same
settings and the same commands, link to each other, and show the same screenshot. A
setting or command added to README.md fails here until README.ru.md has it too."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
README_RU = (ROOT / "README.ru.md").read_text(encoding="utf-8")

# A fenced block (```...```) or an inline code span (`...`).
_CODE = re.compile(r"```[^\n]*\n(.*?)```|`([^`\n]+)`", re.DOTALL)
# `make run`, `make test HOST=...`: the target; `manage.py migrate`: the subcommand.
_COMMAND = re.compile(r"\b(make [a-z][a-z0-9_-]*|manage\.py [a-z][a-z0-9_]*)")
# A setting's name: upper case, digits and underscores, with at least one underscore or
# three letters ("DEBUG", "OPENAI_API_KEY"; not "A" or "OK").
_NAME = r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+|[A-Z]{3,}[A-Z0-9]*"


def env_example_names() -> set[str]:
    """The variables .env.example lists, set or commented out ("# NAME=...")."""
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(rf"^#?\s*({_NAME})=", text, re.MULTILINE))


def settings_named(readme: str) -> set[str]:
    """The variables of .env.example that ``readme`` names (as whole words)."""
    return {name for name in env_example_names() if re.search(rf"\b{name}\b", readme)}


def code_names(readme: str) -> set[str]:
    """UPPER_CASE names inside the code spans and blocks of ``readme``: settings and
    environment variables, also those .env.example does not list (``CI``,
    ``TEST_DATABASE_URL``, ``NAME_BASE_URL``, ``AWS_*``)."""
    names: set[str] = set()
    for block, span in _CODE.findall(readme):
        names |= set(re.findall(rf"\b(?:{_NAME})\b", block or span))
    return names


def commands(readme: str) -> set[str]:
    """The ``make ...`` and ``manage.py ...`` commands in the code of ``readme``."""
    found: set[str] = set()
    for block, span in _CODE.findall(readme):
        found |= set(_COMMAND.findall(block or span))
    return found


def test_the_english_readme_names_settings_and_commands() -> None:
    """The comparisons below compare something: the extraction finds what is there."""
    assert {"OPENAI_API_KEY", "DEBUG", "CHAT_TITLE_MODEL"} <= settings_named(README)
    assert {"make run", "make test", "make admin", "manage.py createsuperuser"} <= commands(README)


def test_both_readmes_name_the_same_settings_of_env_example() -> None:
    english, russian = settings_named(README), settings_named(README_RU)
    assert not english - russian, f"README.ru.md does not name: {sorted(english - russian)}"
    assert not russian - english, f"README.md does not name: {sorted(russian - english)}"


def test_both_readmes_show_the_same_names_in_their_code() -> None:
    english, russian = code_names(README), code_names(README_RU)
    assert not english - russian, f"README.ru.md lacks: {sorted(english - russian)}"
    assert not russian - english, f"README.md lacks: {sorted(russian - english)}"


def test_both_readmes_give_the_same_commands() -> None:
    english, russian = commands(README), commands(README_RU)
    assert not english - russian, f"README.ru.md lacks: {sorted(english - russian)}"
    assert not russian - english, f"README.md lacks: {sorted(russian - english)}"


@pytest.mark.parametrize(("readme", "other"), [(README, "README.ru.md"), (README_RU, "README.md")])
def test_each_readme_links_to_the_other_at_the_top(readme: str, other: str) -> None:
    head = readme[: readme.index("\n## ")]
    assert f"]({other})" in head


def test_the_russian_readme_opens_with_the_two_commands_and_the_screenshot() -> None:
    head = README_RU[: README_RU.index("\n## ")]
    assert "make run" in head and "make test" in head
    assert "(docs/screenshot.png)" in head


def test_both_readmes_have_as_many_sections() -> None:
    """The same structure: as many ## and ### headings (a section added to README.md
    needs its Russian counterpart)."""

    def headings(text: str) -> list[str]:
        return re.findall(r"^(#{2,3}) ", text, re.MULTILINE)

    assert headings(README_RU) == headings(README)


def test_a_setting_the_russian_readme_lacks_is_caught() -> None:
    """The check this file exists for, on a README.ru.md that lost one setting."""
    shorter = README_RU.replace("CHAT_TITLE_MODEL", "")
    assert settings_named(README_RU) - settings_named(shorter) == {"CHAT_TITLE_MODEL"}
    assert code_names(README_RU) - code_names(shorter) == {"CHAT_TITLE_MODEL"}
