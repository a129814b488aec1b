"""The export and import pages over HTTP: owner only, safe file names, the streamed
archive, both ways of uploading, progress lines, and the result page."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.test import AsyncClient, Client

from chat.models import Conversation, Message
from transfer.models import ImportBatch

from .conftest import fixture_bytes
from .test_import import branched_conversation

pytestmark = pytest.mark.django_db

NDJSON = "application/x-ndjson"


@pytest.fixture
def client_of(alice: Any) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def lines(response: Any) -> list[dict[str, Any]]:
    body = b"".join(response.streaming_content).decode()
    return [json.loads(line) for line in body.splitlines()]


def raw_post(client: Client, data: bytes, name: str) -> Any:
    return client.post(
        "/transfer/import/",
        data=data,
        content_type="application/octet-stream",
        headers={"accept": NDJSON, "x-file-name": quote(name)},
    )


def test_chat_page_links_to_exports_and_the_transfer_page(client_of: Client, alice: Any) -> None:
    conversation = Conversation.objects.create(owner=alice, title="Hello", provider="openai")
    page = client_of.get(f"/c/{conversation.pk}/").content.decode()
    assert f'href="/transfer/c/{conversation.pk}/export/?format=md"' in page
    assert f'href="/transfer/c/{conversation.pk}/export/?format=json"' in page
    assert 'href="/transfer/"' in page


def test_markdown_export_is_a_download_with_a_safe_name(
    client_of: Client, alice: Any, media: Path
) -> None:
    conversation = branched_conversation(alice, media)
    response = client_of.get(f"/transfer/c/{conversation.pk}/export/?format=md")
    assert response.status_code == 200
    assert response["Content-Type"] == "text/markdown; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="trip-plan-paris.md"'
    body = response.content.decode()
    assert body.startswith('# Trip "plan" / Paris')
    assert "(version 2 of 2)" in body and "- Usage: 12 input tokens, 30 output tokens" in body


def test_json_export_is_the_apps_document(client_of: Client, alice: Any, media: Path) -> None:
    conversation = branched_conversation(alice, media)
    response = client_of.get(f"/transfer/c/{conversation.pk}/export/?format=json")
    document = response.json()
    assert response["Content-Disposition"] == 'attachment; filename="trip-plan-paris.json"'
    assert document["format"] == "chat_ai.conversations" and document["version"] == 1
    (row,) = document["conversations"]
    assert len(row["messages"]) == 5 and row["branch_shown"] == conversation.current_leaf_id


def test_a_title_with_no_ascii_letters_still_gets_a_file_name(
    client_of: Client, alice: Any
) -> None:
    conversation = Conversation.objects.create(owner=alice, title="Привет ✦", provider="x")
    response = client_of.get(f"/transfer/c/{conversation.pk}/export/?format=md")
    assert response["Content-Disposition"] == 'attachment; filename="conversation.md"'


def test_another_persons_conversation_is_not_found(client_of: Client, bob: Any) -> None:
    theirs = Conversation.objects.create(owner=bob, title="Private", provider="x")
    for kind in ("md", "json", "zip"):
        response = client_of.get(f"/transfer/c/{theirs.pk}/export/?format={kind}")
        assert response.status_code == 404


def test_an_unknown_export_format_is_refused(client_of: Client, alice: Any) -> None:
    conversation = Conversation.objects.create(owner=alice, title="A", provider="x")
    response = client_of.get(f"/transfer/c/{conversation.pk}/export/?format=pdf")
    assert response.status_code == 400
    assert "choose md, json or zip" in response.content.decode()


def test_signed_out_visitors_are_sent_to_sign_in() -> None:
    response = Client().get("/transfer/export/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_export_all_streams_one_zip_with_json_markdown_and_files(
    client_of: Client, alice: Any, bob: Any, media: Path
) -> None:
    branched_conversation(alice, media)
    Conversation.objects.create(owner=alice, title="Second", provider="x")
    Conversation.objects.create(owner=bob, title="Not alice's", provider="x")
    response = client_of.get("/transfer/export/")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith(
        'attachment; filename="chat-ai-conversations-'
    )
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    names = archive.namelist()
    document = json.loads(archive.read("conversations.json"))
    assert [c["title"] for c in document["conversations"]] == ["Second", 'Trip "plan" / Paris']
    assert sorted(n for n in names if n.startswith("markdown/")) == [
        f"markdown/second-{document['conversations'][0]['id']}.md",
        f"markdown/trip-plan-paris-{document['conversations'][1]['id']}.md",
    ]
    files = [a["file"] for m in document["conversations"][1]["messages"] for a in m["attachments"]]
    assert len(files) == 2 and all(f in names and f.startswith("attachments/") for f in files)


def test_the_page_offers_export_and_import(client_of: Client) -> None:
    page = client_of.get("/transfer/").content.decode()
    assert 'href="/transfer/export/"' in page
    assert 'action="/transfer/import/"' in page and 'type="file"' in page


def test_form_upload_imports_and_shows_the_result(client_of: Client, alice: Any) -> None:
    upload = io.BytesIO(fixture_bytes("chatgpt_conversations.json"))
    upload.name = "conversations.json"
    response = client_of.post("/transfer/import/", {"file": upload})
    batch = ImportBatch.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == f"/transfer/import/{batch.pk}/"
    page = client_of.get(response["Location"]).content.decode()
    capitals = Conversation.objects.get(owner=alice, title="Capitals")
    assert "2 conversations imported" in page and "9 messages" in page
    assert f'href="/c/{capitals.pk}/"' in page
    assert "3 system, tool or hidden messages were left out" in page
    # the page lists the import among the recent ones
    assert "conversations.json" in client_of.get("/transfer/").content.decode()


def test_form_upload_of_an_export_over_2_5_mb_is_imported(client_of: Client, alice: Any) -> None:
    """Without the page's script the file goes as a form: a big export is streamed to a
    temporary file, not refused for its size by the form-body check."""
    long_text = "word " * 700_000  # about 3.5 MB
    document = [
        {"role": "user", "content": "Keep this"},
        {"role": "assistant", "content": long_text},
    ]
    upload = io.BytesIO(json.dumps(document).encode())
    upload.name = "messages.json"
    response = client_of.post("/transfer/import/", {"file": upload})
    assert response.status_code == 302, response.content[:300]
    assert Conversation.objects.filter(owner=alice).count() == 1


def test_form_upload_of_a_bad_file_shows_why_and_saves_nothing(client_of: Client) -> None:
    upload = io.BytesIO(b'{"messages": [{"role": "wizard", "content": "hi"}]}')
    upload.name = "chat.json"
    response = client_of.post("/transfer/import/", {"file": upload})
    assert response.status_code == 400
    page = response.content.decode()
    assert "Nothing was imported" in page
    assert "“chat.json”, conversation 1: message 1 has the role “wizard”" in page
    assert not Conversation.objects.exists()


def test_form_without_a_file_asks_for_one(client_of: Client) -> None:
    response = client_of.post("/transfer/import/", {})
    assert response.status_code == 400 and "Choose a file to import." in response.content.decode()


def test_an_empty_file_is_called_empty_not_missing(client_of: Client) -> None:
    # Both ways of uploading used to answer "Choose a file to import." for a 0-byte file.
    streamed = raw_post(client_of, b"", "notes.json")
    assert streamed.status_code == 400
    assert streamed.json()["errors"] == [
        "“notes.json” is empty (0 bytes): there is nothing in it to import."
    ]
    upload = io.BytesIO(b"")
    upload.name = "notes.json"
    form = client_of.post("/transfer/import/", {"file": upload})
    assert form.status_code == 400
    assert form.context["errors"] == [
        "“notes.json” is empty (0 bytes): there is nothing in it to import."
    ]
    assert not ImportBatch.objects.exists()


def test_streamed_import_reports_progress_then_the_result(client_of: Client, alice: Any) -> None:
    response = raw_post(client_of, fixture_bytes("chatgpt_conversations.json"), "mine.json")
    assert response.status_code == 200 and response["Content-Type"] == NDJSON
    got = lines(response)
    assert got[0] == {"stage": "reading", "done": 0, "total": 0}
    assert {"stage": "saving", "done": 2, "total": 2} in got
    batch = ImportBatch.objects.get(owner=alice)
    assert got[-1] == {
        "finished": True,
        "result_url": f"/transfer/import/{batch.pk}/",
        "conversations": 2,
        "messages": 9,
        "skipped": 0,
    }
    assert batch.file_name == "mine.json"
    again = lines(raw_post(client_of, fixture_bytes("chatgpt_conversations.json"), "mine.json"))
    assert again[-1]["conversations"] == 0 and again[-1]["skipped"] == 2


def test_streamed_import_of_a_bad_file_ends_with_the_errors(client_of: Client) -> None:
    got = lines(raw_post(client_of, b"[{", "half.json"))
    assert "“half.json” is not valid JSON" in got[-1]["errors"][0]
    assert not Conversation.objects.exists() and not ImportBatch.objects.exists()


def test_an_upload_over_the_limit_is_refused_before_importing(
    client_of: Client, settings: Any
) -> None:
    settings.TRANSFER_IMPORT_MAX_BYTES = 100
    response = raw_post(client_of, b"[" + b" " * 200 + b"]", "big.json")
    assert response.status_code == 413
    assert response.json() == {
        "errors": ["The file is too large: an import can be up to 100\xa0bytes."]
    }


def test_another_persons_import_result_is_not_found(client_of: Client, bob: Any) -> None:
    batch = ImportBatch.objects.create(owner=bob, file_name="x.json", source_format="openai")
    assert client_of.get(f"/transfer/import/{batch.pk}/").status_code == 404


@pytest.mark.django_db(transaction=True)  # the view runs in another thread
async def test_under_asgi_the_import_streams_in_one_transaction(alice: Any) -> None:
    from asgiref.sync import sync_to_async

    client = AsyncClient()
    await client.aforce_login(alice)
    response = await client.post(
        "/transfer/import/",
        data=fixture_bytes("claude_conversations.json"),
        content_type="application/octet-stream",
        headers={"accept": NDJSON, "x-file-name": "claude.json"},
    )
    assert response.is_async
    body = b"".join([chunk async for chunk in response.streaming_content]).decode()
    last = json.loads(body.splitlines()[-1])
    assert last["finished"] and last["conversations"] == 2
    count = await sync_to_async(Message.objects.filter(conversation__owner=alice).count)()
    assert count == 6
