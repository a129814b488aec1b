"""Images and PDFs as the app puts them in a user message (OpenAI content parts with
``data:`` URLs), for the providers' tests."""

from __future__ import annotations

import base64
from typing import Any

# A 1x1 PNG and a tiny PDF: what a provider receives, not files a model must read.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG_B64 = base64.b64encode(PNG).decode()
PDF_B64 = base64.b64encode(PDF).decode()
PNG_URL = f"data:image/png;base64,{PNG_B64}"
PDF_URL = f"data:application/pdf;base64,{PDF_B64}"


def text(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def image(url: str = PNG_URL) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


def pdf(filename: str = "report.pdf", data_url: str = PDF_URL) -> dict[str, Any]:
    return {"type": "file", "file": {"filename": filename, "file_data": data_url}}


def ask_about_image(question: str = "What is in this picture?") -> list[dict[str, Any]]:
    """A one-turn history: an image, then the question."""
    return [{"role": "user", "content": [image(), text(question)]}]


def ask_about_pdf(question: str = "Summarize it.") -> list[dict[str, Any]]:
    """A one-turn history: a PDF, then the question."""
    return [{"role": "user", "content": [pdf(), text(question)]}]
