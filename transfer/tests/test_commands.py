"""The admins' commands: export any person's conversations, import a file for anyone."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from chat.models import Conversation

from .conftest import FIXTURES
from .test_import import branched_conversation, signature

pytestmark = pytest.mark.django_db


def test_export_then_import_moves_a_person_between_accounts(
    alice: Any, bob: Any, media: Path, tmp_path: Path
) -> None:
    original = branched_conversation(alice, media)
    archive = tmp_path / "alice.zip"
    out = io.StringIO()
    call_command("conversations_export", user="alice", output=str(archive), stdout=out)
    assert f"Exported 1 conversation(s) of alice to {archive}" in out.getvalue()
    assert "conversations.json" in zipfile.ZipFile(archive).namelist()

    out = io.StringIO()
    call_command("conversations_import", str(archive), user="bob", stdout=out)
    assert "Imported 1 conversation(s), 5 message(s) and 2 file(s) for bob" in out.getvalue()
    (copy,) = Conversation.objects.filter(owner=bob)
    assert signature(copy) == signature(original)

    out = io.StringIO()
    call_command("conversations_import", str(archive), user="bob", stdout=out)
    assert "Imported 0 conversation(s)" in out.getvalue() and "1 skipped" in out.getvalue()


def test_import_reads_every_format(alice: Any) -> None:
    for name in ("chatgpt_conversations.json", "claude_conversations.json", "openai_messages.json"):
        call_command(
            "conversations_import", str(FIXTURES / name), user="alice", stdout=io.StringIO()
        )
    assert Conversation.objects.filter(owner=alice).count() == 5


def test_an_invalid_file_imports_nothing_and_says_why(alice: Any, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([{"role": "user", "content": 42}]))
    with pytest.raises(CommandError) as caught:
        call_command("conversations_import", str(path), user="alice")
    assert "Nothing was imported" in str(caught.value)
    assert "“bad.json”, conversation 1: message 1: “content” must be a string" in str(caught.value)
    assert not Conversation.objects.exists()


def test_an_unknown_user_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="No user is named 'nobody'"):
        call_command("conversations_export", user="nobody", output=str(tmp_path / "x.zip"))


def test_a_missing_file_is_an_error(alice: Any, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="Could not read"):
        call_command("conversations_import", str(tmp_path / "nope.json"), user="alice")
