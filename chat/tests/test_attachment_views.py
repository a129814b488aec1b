"""Attachments over HTTP (chat/attachment_views.py): upload, fetch by the owner and by
staff with headers that keep an uploaded file from ever running as a page, 404 for
anyone else, removal of an unsent upload."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import AsyncClient, Client
from django.urls import reverse
from PIL import Image

from chat.models import Attachment, Conversation, Message
from chat.tests.test_attachments import image_bytes, noisy_bytes, pdf_bytes

pytestmark = pytest.mark.django_db(transaction=True)

UPLOAD_URL = "/attachments/"


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def owner(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("ada", password="pw-123456789")


@pytest.fixture
def owner_client(owner: User) -> Client:
    client = Client(enforce_csrf_checks=False)
    client.force_login(owner)
    return client


def post_file(client: Client, name: str, data: bytes) -> Any:
    return client.post(
        UPLOAD_URL,
        {"file": SimpleUploadedFile(name, data)},
        headers={"X-Requested-With": "fetch"},
    )


def test_the_upload_url_is_named_for_the_page() -> None:
    assert reverse("chat:attachments") == UPLOAD_URL
    assert reverse("chat:attachment", args=[7]) == "/attachments/7/"


def test_an_uploaded_image_answers_201_with_what_the_page_shows(
    media: Path, owner_client: Client, owner: User
) -> None:
    response = post_file(owner_client, "cat.png", image_bytes("PNG", (32, 16)))
    assert response.status_code == 201
    data = response.json()
    attachment = Attachment.objects.get(pk=data["id"])
    assert attachment.owner == owner and attachment.message is None
    assert data == {
        "id": attachment.pk,
        "name": "cat.png",
        "kind": "image",
        "size": attachment.size,
        "content_type": "image/png",
        "url": f"/attachments/{attachment.pk}/",
        "thumb_url": f"/attachments/{attachment.pk}/?size=thumb",
        "width": 32,
        "height": 16,
    }


def test_a_refused_upload_answers_400_with_the_reason_and_stores_nothing(
    media: Path, owner_client: Client
) -> None:
    response = post_file(owner_client, "cat.png", b"%PDF-1.4 pretending")
    assert response.status_code == 400
    assert "cat.png" in response.json()["error"]
    assert not Attachment.objects.exists()


def test_an_upload_without_a_file_answers_400(media: Path, owner_client: Client) -> None:
    response = owner_client.post(UPLOAD_URL, {"other": "x"})
    assert response.status_code == 400
    assert "error" in response.json()


def test_an_anonymous_upload_answers_403_json(media: Path) -> None:
    response = post_file(Client(), "cat.png", image_bytes())
    assert response.status_code == 403
    assert "error" in response.json()
    assert not Attachment.objects.exists()


def test_an_upload_without_the_csrf_token_is_refused(media: Path, owner: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert post_file(client, "cat.png", image_bytes()).status_code == 403
    assert not Attachment.objects.exists()


def test_uploading_too_fast_answers_429(media: Path, owner_client: Client, settings: Any) -> None:
    settings.CHAT_ATTACHMENT_RATE_LIMIT = 2
    for _ in range(2):
        assert post_file(owner_client, "a.txt", b"a").status_code == 201
    response = post_file(owner_client, "a.txt", b"a")
    assert response.status_code == 429
    assert response["Retry-After"]


def uploaded(client: Client, name: str, data: bytes) -> int:
    response = post_file(client, name, data)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_the_owner_fetches_an_image_inline_with_safe_headers(
    media: Path, owner_client: Client
) -> None:
    data = image_bytes("PNG")
    pk = uploaded(owner_client, "my cat.png", data)
    response = owner_client.get(f"/attachments/{pk}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data
    assert response["Content-Type"] == "image/png"
    assert response["Content-Disposition"].startswith("inline")
    assert response["Content-Disposition"] == 'inline; filename="my cat.png"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_thumbnail_of_a_large_photo_is_small_and_kept_by_the_browser(
    media: Path, owner_client: Client
) -> None:
    data = noisy_bytes("JPEG", (4000, 3000))
    pk = uploaded(owner_client, "photo.jpg", data)
    response = owner_client.get(f"/attachments/{pk}/?size=thumb")
    assert response.status_code == 200
    assert response["Content-Type"] == "image/webp"
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert (thumb.format, thumb.size) == ("WEBP", (448, 336))
    assert len(response.content) < len(data) // 20
    assert response["Cache-Control"] == "private, max-age=31536000, immutable"
    assert response["Content-Disposition"] == 'inline; filename="photo.webp"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'"
    original = owner_client.get(f"/attachments/{pk}/")
    assert b"".join(original.streaming_content) == data  # the link still opens the original


def test_a_thumbnail_missing_from_storage_is_made_on_first_request(
    media: Path, owner_client: Client
) -> None:
    pk = uploaded(owner_client, "cat.png", image_bytes("PNG", (900, 300)))
    (thumb_file,) = media.rglob("*.thumb.webp")
    thumb_file.unlink()  # uploaded before thumbnails existed
    response = owner_client.get(f"/attachments/{pk}/?size=thumb")
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.size == (448, 149)
    assert thumb_file.read_bytes() == response.content


def test_an_unknown_size_answers_400(media: Path, owner_client: Client) -> None:
    pk = uploaded(owner_client, "cat.png", image_bytes())
    assert owner_client.get(f"/attachments/{pk}/?size=huge").status_code == 400


def test_a_pdf_opens_inline_and_a_text_file_downloads(media: Path, owner_client: Client) -> None:
    pdf = owner_client.get(f"/attachments/{uploaded(owner_client, 'r.pdf', pdf_bytes())}/")
    assert pdf["Content-Type"] == "application/pdf"
    assert pdf["Content-Disposition"].startswith("inline")
    page = owner_client.get(
        f"/attachments/{uploaded(owner_client, 'page.html', b'<script>alert(1)</script>')}/"
    )
    assert page["Content-Disposition"].startswith("attachment")
    assert page["Content-Type"] == "text/html; charset=utf-8"
    assert "sandbox" in page["Content-Security-Policy"]
    assert page["Content-Security-Policy"].startswith("default-src 'none'")


def test_a_non_ascii_name_is_given_as_filename_star(media: Path, owner_client: Client) -> None:
    pk = uploaded(owner_client, "отчёт.txt", "текст".encode())
    disposition = owner_client.get(f"/attachments/{pk}/")["Content-Disposition"]
    assert "filename*=utf-8''" in disposition
    assert "%D0%BE%D1%82%D1%87%D1%91%D1%82.txt" in disposition


def test_another_person_gets_404_for_the_file(
    media: Path, owner_client: Client, django_user_model: type[User]
) -> None:
    pk = uploaded(owner_client, "cat.png", image_bytes())
    stranger = Client()
    stranger.force_login(django_user_model.objects.create_user("eve", password="pw-987654321"))
    assert stranger.get(f"/attachments/{pk}/").status_code == 404
    assert Client().get(f"/attachments/{pk}/").status_code == 404  # signed out
    assert stranger.get(f"/attachments/{pk}/?size=thumb").status_code == 404
    assert Client().get(f"/attachments/{pk}/?size=thumb").status_code == 404
    assert stranger.delete(f"/attachments/{pk}/").status_code == 404
    assert Attachment.objects.filter(pk=pk).exists()


def test_staff_can_fetch_anyones_file(
    media: Path, owner_client: Client, django_user_model: type[User]
) -> None:
    data = image_bytes("PNG")
    pk = uploaded(owner_client, "cat.png", data)
    staff = Client()
    staff.force_login(
        django_user_model.objects.create_user("root", password="pw-987654321", is_staff=True)
    )
    response = staff.get(f"/attachments/{pk}/")
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == data


async def test_under_asgi_the_file_streams_in_chunks(
    media: Path, owner_client: Client, owner: User
) -> None:
    from asgiref.sync import sync_to_async

    data = image_bytes("PNG", (400, 400))
    pk = await sync_to_async(uploaded)(owner_client, "big.png", data)
    client = AsyncClient()
    await client.aforce_login(owner)
    response = await client.get(f"/attachments/{pk}/")
    assert response.status_code == 200
    assert response.is_async
    assert response["Content-Length"] == str(len(data))
    assert b"".join([chunk async for chunk in response.streaming_content]) == data


def test_the_owner_removes_an_unsent_upload_and_its_file(media: Path, owner_client: Client) -> None:
    pk = uploaded(owner_client, "a.txt", b"a")
    second = uploaded(owner_client, "b.txt", b"b")
    assert owner_client.delete(f"/attachments/{pk}/").status_code == 204
    assert owner_client.post(f"/attachments/{second}/delete/").status_code == 204
    assert not Attachment.objects.exists()
    assert not [p for p in media.rglob("*") if p.is_file()]
    assert owner_client.get(f"/attachments/{pk}/").status_code == 404


def test_a_sent_attachment_is_not_removed_alone(
    media: Path, owner_client: Client, owner: User
) -> None:
    pk = uploaded(owner_client, "a.txt", b"a")
    conversation = Conversation.objects.create(owner=owner, provider="fake", model="m")
    message = Message.objects.create(conversation=conversation, role="user", content="x")
    Attachment.objects.filter(pk=pk).update(message=message)
    response = owner_client.delete(f"/attachments/{pk}/")
    assert response.status_code == 400
    assert Attachment.objects.filter(pk=pk).exists()


def test_the_thread_shows_a_sent_messages_files(
    media: Path, owner_client: Client, owner: User
) -> None:
    image = uploaded(owner_client, "cat.png", image_bytes("PNG", (20, 10)))
    pdf = uploaded(owner_client, "report.pdf", pdf_bytes(pages=2))
    conversation = Conversation.objects.create(owner=owner, provider="fake", model="m")
    message = Message.objects.create(conversation=conversation, role="user", content="Look")
    Attachment.objects.filter(pk__in=[image, pdf]).update(message=message)
    Conversation.objects.filter(pk=conversation.pk).update(current_leaf=message)
    page = owner_client.get(f"/c/{conversation.pk}/").content.decode()
    assert (
        f'<img src="/attachments/{image}/?size=thumb" alt="cat.png" width="20" height="10"' in page
    )
    assert f'<a class="att-thumb" href="/attachments/{image}/"' in page  # the original
    assert f'href="/attachments/{pdf}/"' in page
    assert "report.pdf" in page and "2 pages" in page


def test_the_admin_lists_a_messages_files_with_links(
    media: Path, owner_client: Client, owner: User, django_user_model: type[User]
) -> None:
    pk = uploaded(owner_client, "cat.png", image_bytes())
    conversation = Conversation.objects.create(owner=owner, provider="fake", model="m")
    message = Message.objects.create(conversation=conversation, role="user", content="x")
    Attachment.objects.filter(pk=pk).update(message=message)
    staff = Client()
    staff.force_login(
        django_user_model.objects.create_superuser("root", "r@example.com", "pw-987654321")
    )
    for url in (
        reverse("admin:chat_message_change", args=[message.pk]),
        reverse("admin:chat_conversation_change", args=[conversation.pk]),
        reverse("admin:chat_attachment_changelist"),
    ):
        page = staff.get(url).content.decode()
        assert f'href="/attachments/{pk}/"' in page, url
        assert "cat.png" in page


def test_a_body_larger_than_any_allowed_file_is_refused_before_reading(
    media: Path, owner_client: Client, settings: Any
) -> None:
    settings.CHAT_ATTACHMENT_MAX_BYTES = 1000
    response = post_file(owner_client, "big.txt", b"a" * 200_000)
    assert response.status_code == 413
    assert "too large" in response.json()["error"]
    assert not Attachment.objects.exists()
