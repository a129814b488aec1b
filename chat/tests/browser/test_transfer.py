"""Import and export in Chromium: the page uploads a ChatGPT export with its script,
shows the progress, opens the result, and the imported conversation opens on the branch
that was shown; "Export all conversations" downloads the archive streamed by uvicorn."""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from transfer.tests.conftest import FIXTURES

from .conftest import AppServer
from .test_chat_e2e import sign_up

pytestmark = pytest.mark.browser


def test_import_a_chatgpt_export_then_export_everything(
    page: Page, app_server: AppServer, tmp_path: Path
) -> None:
    sign_up(page)
    page.get_by_role("link", name="Export and import").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Export and import")

    # The page's script has bound the form (it sends the file itself, with progress).
    expect(page.locator("#import-form")).to_have_attribute("data-ready", "true")
    page.get_by_label("File to import").set_input_files(FIXTURES / "chatgpt_conversations.json")
    with page.expect_response(
        lambda r: r.url.endswith("/transfer/import/"), timeout=30_000
    ) as answer:
        page.get_by_role("button", name="Import", exact=True).click()
    # The page's script sent it (the raw file, progress lines back), not the plain form.
    assert answer.value.request.all_headers()["accept"] == "application/x-ndjson"
    assert answer.value.headers["content-type"] == "application/x-ndjson"

    # A shared CI machine may be slow: the import renders every reply's Markdown.
    expect(page.get_by_role("heading", level=1)).to_have_text("Import finished", timeout=30_000)
    expect(page.get_by_text("2 conversations imported")).to_be_visible()
    expect(page.get_by_text("3 system, tool or hidden messages were left out.")).to_be_visible()
    page.get_by_role("link", name="Capitals").click()
    expect(page).to_have_url(re.compile(r"/c/\d+/$"))
    thread = page.locator("#thread")
    expect(thread.get_by_text("And Germany? Check with Python.")).to_be_visible()
    expect(thread.locator("strong", has_text="Paris")).to_be_visible()  # rendered Markdown

    page.goto("/transfer/")
    with page.expect_download(timeout=30_000) as download:
        page.get_by_role("link", name="Export all conversations").click()
    archive = tmp_path / "export.zip"
    download.value.save_as(archive)
    document = json.loads(zipfile.ZipFile(archive).read("conversations.json"))
    assert sorted(c["title"] for c in document["conversations"]) == ["A cat picture", "Capitals"]
