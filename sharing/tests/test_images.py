"""Images in a shared conversation: copies without metadata, served only through the
link's token; other files are named, not shared; "Continue" copies the images too."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from PIL import ExifTags, Image

from chat.models import Attachment, Conversation, Message
from chat.services.attachments import attachment_create
from chat.tests.test_attachments import jpeg_with_gps, pdf_bytes
from sharing import services
from sharing.models import SharedImage, SharedLink

from .conftest import add

pytestmark = pytest.mark.django_db


@pytest.fixture
def with_files(alice: User, conversation: Conversation) -> Conversation:
    """Alice's conversation goes on with a photo (GPS position in its EXIF) and a PDF."""
    message = add(conversation, Message.Role.USER, "What is in these?")
    for position, (name, data) in enumerate(
        [("photo.jpg", jpeg_with_gps((60, 40))), ("report.pdf", pdf_bytes())]
    ):
        attachment = attachment_create(owner=alice, upload=SimpleUploadedFile(name, data))
        Attachment.objects.filter(pk=attachment.pk).update(message=message, position=position)
    return conversation


def share(alice: User, conversation: Conversation, audience: str = "public") -> SharedLink:
    return services.shared_link_create(
        owner=alice, conversation_id=conversation.pk, audience=audience
    )


def image_url(link: SharedLink, image: SharedImage, size: str = "") -> str:
    url = reverse("sharing:image", args=[link.token, image.pk])
    return f"{url}?size={size}" if size else url


def test_the_page_shows_the_image_through_the_link_and_names_the_other_file(
    alice: User, client: Client, with_files: Conversation
) -> None:
    link = share(alice, with_files)
    image = SharedImage.objects.get(link=link)
    html = client.get(reverse("sharing:view", args=[link.token])).content.decode()
    assert f'src="{image_url(link, image)}?size=thumb"' in html
    assert "report.pdf" in html and "Not shared" in html
    assert "/attachments/" not in html  # never the owner's own files


def test_the_shared_image_has_no_metadata(
    alice: User, client: Client, with_files: Conversation
) -> None:
    link = share(alice, with_files)
    image = SharedImage.objects.get(link=link)
    response = client.get(image_url(link, image))
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Security-Policy"] == "default-src 'none'"
    with Image.open(io.BytesIO(response.content)) as served:
        assert ExifTags.IFD.GPSInfo not in served.getexif()
        assert "xmp" not in served.info
    thumb = client.get(image_url(link, image, "thumb"))
    assert thumb["Content-Type"] == "image/webp"


@pytest.mark.parametrize(
    ("case", "expected"),
    [("other_link", 404), ("revoked", 404), ("anonymous_signed_in_only", 302)],
)
def test_an_image_opens_only_as_its_link_does(
    alice: User, client: Client, with_files: Conversation, case: str, expected: int
) -> None:
    link = share(alice, with_files, "signed_in" if case == "anonymous_signed_in_only" else "public")
    image = SharedImage.objects.get(link=link)
    if case == "other_link":
        other = share(alice, with_files)
        url = reverse("sharing:image", args=[other.token, image.pk])
    else:
        url = image_url(link, image)
    if case == "revoked":
        services.shared_link_revoke(owner=alice, link_id=link.pk)
    assert client.get(url).status_code == expected


def test_continue_copies_the_images_for_the_viewer(
    alice: User, bob: User, bob_client: Client, with_files: Conversation
) -> None:
    link = share(alice, with_files)
    bob_client.post(reverse("sharing:continue", args=[link.token]))
    copied = Attachment.objects.get(owner=bob)
    assert (copied.name, copied.kind, copied.message.conversation.owner) == (
        "photo.jpg",
        "image",
        bob,
    )
    assert bob_client.get(reverse("chat:attachment", args=[copied.pk])).status_code == 200


def test_continue_leaves_the_images_out_past_the_viewers_quota(
    alice: User, bob: User, bob_client: Client, with_files: Conversation, settings: Any
) -> None:
    link = share(alice, with_files)
    settings.CHAT_ATTACHMENT_QUOTA_BYTES = 10
    response = bob_client.post(reverse("sharing:continue", args=[link.token]), follow=True)
    assert "images were left out" in response.content.decode()
    assert not Attachment.objects.filter(owner=bob).exists()
    assert Conversation.objects.filter(owner=bob).count() == 1


def test_deleting_the_conversation_deletes_the_shared_image_files(
    alice: User,
    with_files: Conversation,
    media: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    link = share(alice, with_files)
    image = SharedImage.objects.get(link=link)
    stored = [media / image.file.name, media / image.thumb.name]
    assert all(path.exists() for path in stored)
    with django_capture_on_commit_callbacks(execute=True):
        with_files.delete()  # the conversation, so its links and their images
    assert not any(path.exists() for path in stored)
