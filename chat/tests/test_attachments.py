"""Attachments as a service (chat.services.attachments): what is accepted with which
metadata, every refusal (nothing stored), ownership, what a model receives, and files
leaving the storage with their rows."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.utils import timezone
from PIL import ExifTags, Image
from pypdf import PdfWriter

from chat.models import Attachment, Conversation, Message
from chat.providers import PROVIDER_REGISTRY
from chat.providers.capabilities import ModelCapabilities
from chat.services import attachments as service
from chat.services import conversation_delete
from chat.tests.fakes.fake_provider import FakeProvider

pytestmark = pytest.mark.django_db(transaction=True)


# --- Files made here ---------------------------------------------------------------------


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt)
    return buffer.getvalue()


def noisy_bytes(fmt: str, size: tuple[int, int]) -> bytes:
    """A photo-like image (noise compresses badly, like a photo's detail) of ``size``."""
    buffer = io.BytesIO()
    noise = Image.effect_noise(size, 64).convert("L")
    image = Image.merge("RGB", (noise, noise.rotate(90, expand=False), noise.transpose(0)))
    image.save(buffer, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def jpeg_with_gps(size: tuple[int, int] = (40, 30), orientation: int | None = None) -> bytes:
    """A JPEG whose EXIF says where it was taken (and, if given, how to turn it), with an
    XMP packet naming the place too."""
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    exif[ExifTags.IFD.GPSInfo] = {1: "N", 2: (55.0, 45.0, 21.0), 3: "E", 4: (37.0, 37.0, 4.0)}
    image = Image.new("RGB", size, (200, 30, 30))
    image.paste((20, 30, 200), (0, 0, size[0] // 2, size[1]))  # left half blue
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif, xmp=b"<x:xmpmeta>Red Square</x:xmpmeta>")
    return buffer.getvalue()


def sent_image(attachment: Attachment) -> tuple[str, bytes]:
    """What a model receives for an image attachment: (content type, bytes)."""
    parts = service.attachment_content(text="", attachments=[attachment], capabilities=None)
    header, data = parts[0]["image_url"]["url"].split(",", 1)
    return header.removeprefix("data:").removesuffix(";base64"), base64.b64decode(data)


def opened(data: bytes) -> Image.Image:
    return Image.open(io.BytesIO(data))


def pdf_bytes(text: str = "Quarterly report", pages: int = 1) -> bytes:
    """A small, valid PDF with ``text`` on each page (Helvetica, written by hand)."""
    objects: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>"]
    kids = " ".join(f"{3 + 2 * i} 0 R" for i in range(pages))
    objects.append(f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode())
    font_id = 3 + 2 * pages
    for i in range(pages):
        content = f"BT /F1 18 Tf 20 100 Td ({text} {i + 1}) Tj ET".encode()
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 400 144] /Contents {4 + 2 * i} 0 R "
            f"/Resources << /Font << /F1 {font_id} 0 R >> >> >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def encrypted_pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(200, 200)
    writer.encrypt(user_password="secret", algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def stored_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


# --- Fixtures ----------------------------------------------------------------------------


@pytest.fixture
def media(settings: Any, tmp_path: Path) -> Path:
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


@pytest.fixture
def owner(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("ada", password="pw-123456789")


@pytest.fixture
def other(django_user_model: type[User]) -> User:
    return django_user_model.objects.create_user("bob", password="pw-123456789")


class CapableProvider(FakeProvider):
    """A provider whose capabilities per model the test sets."""

    label = "Capable"
    default_models = ("sees-all", "text-only", "no-pdf")
    table: ClassVar[dict[str, ModelCapabilities]] = {
        "sees-all": ModelCapabilities(images=True, pdf=True),
        "text-only": ModelCapabilities(images=False, pdf=False),
        "no-pdf": ModelCapabilities(images=True, pdf=False),
    }

    def capabilities(self, model: str) -> ModelCapabilities:
        return self.table.get(model, ModelCapabilities())


@pytest.fixture
def capable() -> Iterator[type[CapableProvider]]:
    PROVIDER_REGISTRY["capable"] = CapableProvider
    try:
        yield CapableProvider
    finally:
        PROVIDER_REGISTRY.pop("capable", None)


def make(owner: User, name: str, data: bytes) -> Attachment:
    return service.attachment_create(owner=owner, upload=upload(name, data))


def sent_message(owner: User, *attachments: Attachment) -> Message:
    conversation = Conversation.objects.create(owner=owner, provider="fake", model="fake-small")
    message = Message.objects.create(
        conversation=conversation, role=Message.Role.USER, content="Look at these"
    )
    Attachment.objects.filter(pk__in=[a.pk for a in attachments]).update(message=message)
    return message


# --- Accepted, with metadata ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "fmt", "content_type"),
    [
        ("photo.png", "PNG", "image/png"),
        ("photo.JPG", "JPEG", "image/jpeg"),
        ("photo.webp", "WEBP", "image/webp"),
        ("anim.gif", "GIF", "image/gif"),
    ],
)
def test_an_image_is_stored_with_its_type_and_size_in_pixels(
    media: Path, owner: User, name: str, fmt: str, content_type: str
) -> None:
    data = image_bytes(fmt, (64, 48))
    attachment = make(owner, name, data)
    assert (attachment.kind, attachment.content_type) == ("image", content_type)
    assert (attachment.width, attachment.height) == (64, 48)
    assert attachment.size == len(data)
    assert attachment.name == name
    with attachment.file.open("rb") as handle:
        assert handle.read() == data


def test_a_pdf_keeps_its_page_count_and_text(media: Path, owner: User) -> None:
    attachment = make(owner, "report.pdf", pdf_bytes("Revenue grew", pages=3))
    assert (attachment.kind, attachment.content_type) == ("pdf", "application/pdf")
    assert attachment.page_count == 3
    assert "Revenue grew 1" in attachment.text
    assert "Revenue grew 3" in attachment.text


@pytest.mark.parametrize(
    ("name", "data", "content_type"),
    [
        ("notes.md", b"# Title\n\nSome *text*.\n", "text/markdown"),
        ("table.csv", b"a,b\n1,2\n", "text/csv"),
        ("data.json", b'{"ok": true}', "application/json"),
        ("main.py", b"print('hello')\n", "text/x-python"),
        ("readme.txt", "\ufeffПривет, мир\n".encode(), "text/plain"),
    ],
)
def test_a_text_file_keeps_its_text(
    media: Path, owner: User, name: str, data: bytes, content_type: str
) -> None:
    attachment = make(owner, name, data)
    assert (attachment.kind, attachment.content_type) == ("text", content_type)
    assert attachment.text == data.decode("utf-8-sig")  # a BOM is not part of the text


def test_the_stored_name_is_random_and_the_shown_name_is_cleaned(media: Path, owner: User) -> None:
    attachment = make(owner, "../../etc/x\x00y  z.txt", b"hello")
    assert attachment.name == "x y z.txt"
    stored = attachment.file.name
    assert stored.startswith("attachments/")
    assert "x y z" not in stored and ".." not in stored
    assert (media / stored).is_file()


def test_a_long_text_is_cut_at_the_limit_and_says_so(
    media: Path, owner: User, settings: Any
) -> None:
    settings.CHAT_ATTACHMENT_MAX_TEXT_CHARS = 100
    attachment = make(owner, "long.txt", b"x" * 500)
    assert attachment.text.startswith("x" * 100)
    assert "x" * 101 not in attachment.text
    assert "first 100 characters" in attachment.text


# --- Refused, nothing stored -------------------------------------------------------------------


def refused(owner: User, name: str, data: bytes) -> str:
    with pytest.raises(ValidationError) as caught:
        make(owner, name, data)
    return " ".join(caught.value.messages)


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("cat.png", b"not an image at all", ["cat.png", "PNG image"]),
        ("cat.png", pdf_bytes(), ["cat.png", "PDF", "PNG image"]),  # the extension lies
        ("cat.jpg", image_bytes("PNG"), ["cat.jpg", "PNG image", "JPEG image"]),
        ("doc.pdf", image_bytes("PNG"), ["doc.pdf", "PNG image", "PDF"]),
        ("notes.txt", image_bytes("GIF"), ["notes.txt", "GIF image", "text file"]),
        ("secret.pdf", encrypted_pdf_bytes(), ["secret.pdf", "password-protected"]),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", ["broken.pdf", "damaged"]),
        ("broken.pdf", b"just text", ["broken.pdf", "damaged or not a PDF"]),
        ("blob.txt", b"\xff\xfe\x00\x01binary", ["blob.txt", "not UTF-8"]),
        ("nul.txt", b"abc\x00def", ["nul.txt", "binary"]),
        ("bad.json", b'{"a": 1,}', ["bad.json", "not valid JSON", "line 1"]),
        ("tool.exe", b"MZ\x90\x00", ["tool.exe", "cannot be attached"]),
        ("empty.txt", b"", ["empty.txt", "empty"]),
    ],
)
def test_a_file_that_is_not_what_it_says_is_refused_naming_it(
    media: Path, owner: User, name: str, data: bytes, words: list[str]
) -> None:
    message = refused(owner, name, data)
    for word in words:
        assert word in message
    assert not Attachment.objects.exists()
    assert stored_files(media) == []


def test_a_file_over_the_size_limit_is_refused(media: Path, owner: User, settings: Any) -> None:
    settings.CHAT_ATTACHMENT_MAX_BYTES = 1000
    message = refused(owner, "big.txt", b"a" * 1001)
    assert "big.txt" in message and "too large" in message and "1000" in message
    assert stored_files(media) == []


def test_a_file_over_the_persons_quota_is_refused(
    media: Path, owner: User, other: User, settings: Any
) -> None:
    settings.CHAT_ATTACHMENT_QUOTA_BYTES = 1500
    make(owner, "first.txt", b"a" * 1000)
    message = refused(owner, "second.txt", b"b" * 600)
    assert "second.txt" in message and "limit per person" in message
    assert Attachment.objects.filter(owner=owner).count() == 1
    make(other, "theirs.txt", b"c" * 600)  # the quota is each person's own


# --- Sending: ownership and limits ------------------------------------------------------------


def test_attachments_for_send_keeps_the_order_given(media: Path, owner: User) -> None:
    first = make(owner, "a.txt", b"a")
    second = make(owner, "b.txt", b"b")
    result = service.attachments_for_send(owner=owner, ids=[second.pk, first.pk])
    assert [a.pk for a in result] == [second.pk, first.pk]


def test_another_persons_attachment_cannot_be_sent(media: Path, owner: User, other: User) -> None:
    theirs = make(other, "theirs.txt", b"private")
    with pytest.raises(ValidationError, match="no longer available"):
        service.attachments_for_send(owner=owner, ids=[theirs.pk])


def test_an_attachment_already_sent_cannot_be_sent_again(media: Path, owner: User) -> None:
    attachment = make(owner, "a.txt", b"a")
    sent_message(owner, attachment)
    with pytest.raises(ValidationError):
        service.attachments_for_send(owner=owner, ids=[attachment.pk])
    with pytest.raises(ValidationError):
        service.attachments_for_send(owner=owner, ids=[987654])


def test_more_files_than_a_message_carries_are_refused(
    media: Path, owner: User, settings: Any
) -> None:
    settings.CHAT_ATTACHMENTS_PER_MESSAGE = 2
    ids = [make(owner, f"{i}.txt", b"x").pk for i in range(3)]
    with pytest.raises(ValidationError, match="at most 2 files"):
        service.attachments_for_send(owner=owner, ids=ids)


def test_linking_takes_each_upload_once(media: Path, owner: User) -> None:
    attachment = make(owner, "a.txt", b"a")
    first = sent_message(owner)
    second = sent_message(owner)
    chosen = service.attachments_for_send(owner=owner, ids=[attachment.pk])
    service.attachments_link(attachments=chosen, message_id=first.pk)
    with pytest.raises(ValidationError):
        service.attachments_link(attachments=chosen, message_id=second.pk)
    attachment.refresh_from_db()
    assert attachment.message_id == first.pk


# --- Which model can take what -----------------------------------------------------------------


def test_an_image_to_a_model_that_cannot_see_is_refused_naming_models_that_can(
    media: Path, owner: User, capable: type
) -> None:
    image = make(owner, "chart.png", image_bytes())
    with pytest.raises(ValidationError) as caught:
        service.attachments_check_model(attachments=[image], provider="capable", model="text-only")
    message = " ".join(caught.value.messages)
    assert "chart.png" in message and "cannot read images" in message
    assert "sees-all (Capable)" in message
    assert "text-only (Capable)" not in message.split("example")[-1]


def test_a_pdf_to_a_model_that_cannot_read_pdfs_goes_as_text_and_says_so(
    media: Path, owner: User, capable: type
) -> None:
    pdf = make(owner, "report.pdf", pdf_bytes())
    notes = service.attachments_check_model(attachments=[pdf], provider="capable", model="no-pdf")
    assert len(notes) == 1
    assert "report.pdf" in notes[0] and "extracted text" in notes[0]
    assert (
        service.attachments_check_model(attachments=[pdf], provider="capable", model="sees-all")
        == []
    )


def test_unknown_capabilities_let_everything_through(
    media: Path, owner: User, capable: type
) -> None:
    image = make(owner, "chart.png", image_bytes())
    assert (
        service.attachments_check_model(attachments=[image], provider="capable", model="other")
        == []
    )


# --- What a model receives ---------------------------------------------------------------------


def test_no_attachments_is_plain_text() -> None:
    assert service.attachment_content(text="Hi", attachments=[], capabilities=None) == "Hi"


def test_an_image_is_an_image_url_part_with_its_data(media: Path, owner: User) -> None:
    data = image_bytes("PNG")
    image = make(owner, "chart.png", data)
    parts = service.attachment_content(
        text="What is this?", attachments=[image], capabilities=ModelCapabilities(images=True)
    )
    assert parts == [
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(data).decode()},
        },
        {"type": "text", "text": "What is this?"},
    ]


def test_a_large_photo_is_sent_at_2048_pixels_as_jpeg(media: Path, owner: User) -> None:
    image = make(owner, "photo.jpg", noisy_bytes("JPEG", (3000, 2000)))
    content_type, data = sent_image(image)
    assert content_type == "image/jpeg"
    assert opened(data).format == "JPEG"
    assert opened(data).size == (2048, 1365)
    assert len(data) <= service.FIT_MAX_BYTES


def test_a_large_png_is_sent_as_a_smaller_png_keeping_transparency(
    media: Path, owner: User
) -> None:
    diagram = Image.new("RGBA", (2600, 1300), (30, 120, 200, 255))
    diagram.putalpha(Image.linear_gradient("L").resize((2600, 1300)))
    buffer = io.BytesIO()
    diagram.save(buffer, "PNG")
    image = make(owner, "diagram.png", buffer.getvalue())
    content_type, data = sent_image(image)
    assert content_type == "image/png"
    assert opened(data).size == (2048, 1024)
    assert opened(data).mode == "RGBA"


def test_an_image_over_the_byte_limit_is_made_smaller_until_it_fits(
    media: Path, owner: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "FIT_MAX_BYTES", 60_000)
    for name, fmt, content_type in (("a.jpg", "JPEG", "image/jpeg"), ("b.png", "PNG", "image/png")):
        image = make(owner, name, noisy_bytes(fmt, (900, 600)))
        sent_type, data = sent_image(image)
        assert sent_type == content_type
        assert len(data) <= 60_000, name
        width, height = opened(data).size
        assert width < 900 and abs(width / height - 1.5) < 0.02, name


def test_a_small_png_is_sent_byte_for_byte_and_no_copy_is_kept(media: Path, owner: User) -> None:
    data = image_bytes("PNG", (800, 600))
    image = make(owner, "shot.png", data)
    assert sent_image(image) == ("image/png", data)
    assert not [p for p in stored_files(media) if ".fit." in p.name]


def test_the_gps_position_of_a_photo_is_not_sent(media: Path, owner: User) -> None:
    image = make(owner, "holiday.jpg", jpeg_with_gps())
    content_type, data = sent_image(image)
    sent = opened(data)
    assert content_type == "image/jpeg"
    assert not sent.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert "exif" not in sent.info and "xmp" not in sent.info
    assert b"Red Square" not in data
    assert sent.size == (40, 30)


def test_a_photo_turned_by_its_exif_is_sent_and_shown_upright(media: Path, owner: User) -> None:
    # Stored 40 x 30 with "turn 90 degrees clockwise": seen 30 wide, 40 high, the
    # stored left half (blue) on top.
    image = make(owner, "phone.jpg", jpeg_with_gps((40, 30), orientation=6))
    assert (image.width, image.height) == (30, 40)
    _type, data = sent_image(image)
    _thumb_type, thumb = service.attachment_thumbnail(attachment=image) or ("", b"")
    for version in (opened(data), opened(thumb)):
        assert version.size == (30, 40)
        red, _green, blue = version.convert("RGB").getpixel((15, 5))
        assert blue > red  # the top is the blue half
        assert not version.getexif()


def test_the_fitted_copy_is_made_once_and_reused(media: Path, owner: User) -> None:
    image = make(owner, "photo.jpg", noisy_bytes("JPEG", (3000, 2000)))
    fitted = media / Path(image.file.name).with_suffix(".fit.jpg")
    assert fitted.is_file()  # made at upload
    # Replaced by another picture: what is sent is what is stored, not encoded anew.
    marker = image_bytes("JPEG", (20, 10))
    fitted.write_bytes(marker)
    for _turn in range(2):
        assert sent_image(image) == ("image/jpeg", marker)


def test_an_image_uploaded_before_versions_existed_gets_them_when_first_needed(
    media: Path, owner: User
) -> None:
    image = make(owner, "photo.jpg", noisy_bytes("JPEG", (3000, 2000)))
    for version in stored_files(media):
        if ".fit." in version.name or ".thumb." in version.name:
            version.unlink()
    first = sent_image(image)
    assert opened(first[1]).size == (2048, 1365)
    assert (media / Path(image.file.name).with_suffix(".fit.jpg")).read_bytes() == first[1]
    thumb = service.attachment_thumbnail(attachment=image)
    assert thumb is not None and opened(thumb[1]).size == (448, 299)
    assert (media / Path(image.file.name).with_suffix(".thumb.webp")).is_file()


def test_a_half_written_fitted_copy_is_not_sent(media: Path, owner: User) -> None:
    image = make(owner, "photo.jpg", noisy_bytes("JPEG", (3000, 2000)))
    fitted = media / Path(image.file.name).with_suffix(".fit.jpg")
    whole = fitted.read_bytes()
    fitted.write_bytes(whole[: len(whole) // 2])  # another request still writing it
    assert sent_image(image) == ("image/jpeg", whole)


@pytest.mark.parametrize(
    ("name", "fmt", "size", "expected"),
    [
        ("photo.jpg", "JPEG", (4000, 3000), (448, 336)),
        ("tall.png", "PNG", (300, 1200), (112, 448)),
        ("small.webp", "WEBP", (64, 48), (64, 48)),
    ],
)
def test_the_thumbnail_is_a_small_webp(
    media: Path, owner: User, name: str, fmt: str, size: tuple[int, int], expected: tuple
) -> None:
    image = make(owner, name, noisy_bytes(fmt, size))
    content_type, data = service.attachment_thumbnail(attachment=image) or ("", b"")
    assert content_type == "image/webp"
    assert opened(data).format == "WEBP"
    assert opened(data).size == expected
    assert len(data) < 100_000


def test_an_animated_gif_is_its_first_frame_as_png(media: Path, owner: User) -> None:
    frames = [Image.new("RGB", (50, 40), colour) for colour in ("red", "lime", "blue")]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100)
    image = make(owner, "anim.gif", buffer.getvalue())
    content_type, data = sent_image(image)
    assert content_type == "image/png"
    assert opened(data).convert("RGB").getpixel((5, 5)) == (255, 0, 0)
    _thumb_type, thumb = service.attachment_thumbnail(attachment=image) or ("", b"")
    assert opened(thumb).size == (50, 40)
    red, green, blue = opened(thumb).convert("RGB").getpixel((5, 5))
    assert red > 200 and green < 50 and blue < 50


def test_a_phones_mpo_jpeg_is_accepted(media: Path, owner: User) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30)).save(
        buffer, "MPO", save_all=True, append_images=[Image.new("RGB", (20, 15))]
    )
    image = make(owner, "portrait.jpg", buffer.getvalue())
    assert (image.kind, image.content_type, image.width) == ("image", "image/jpeg", 40)
    content_type, data = sent_image(image)
    assert content_type == "image/jpeg" and opened(data).format == "JPEG"


def test_a_pdf_is_a_file_part_for_a_model_that_reads_pdfs(media: Path, owner: User) -> None:
    data = pdf_bytes()
    pdf = make(owner, "report.pdf", data)
    for capabilities in (ModelCapabilities(pdf=True), ModelCapabilities(), None):
        parts = service.attachment_content(
            text="Summarize", attachments=[pdf], capabilities=capabilities
        )
        assert parts[0] == {
            "type": "file",
            "file": {
                "filename": "report.pdf",
                "file_data": "data:application/pdf;base64," + base64.b64encode(data).decode(),
            },
        }


def test_a_pdf_is_its_extracted_text_for_a_model_that_cannot_read_pdfs(
    media: Path, owner: User
) -> None:
    pdf = make(owner, "report.pdf", pdf_bytes("Revenue grew"))
    parts = service.attachment_content(
        text="Summarize", attachments=[pdf], capabilities=ModelCapabilities(pdf=False)
    )
    assert parts[0]["type"] == "text"
    assert parts[0]["text"].startswith("File: report.pdf")
    assert "Revenue grew 1" in parts[0]["text"]
    assert parts[1] == {"type": "text", "text": "Summarize"}


def test_a_text_file_is_a_fenced_text_part_with_its_name(media: Path, owner: User) -> None:
    code = make(owner, "main.py", b"print('```')\n")
    parts = service.attachment_content(text="", attachments=[code], capabilities=None)
    # No empty text part for a message of files alone; a fence longer than the text's.
    assert parts == [
        {"type": "text", "text": "File: main.py\n````python\nprint('```')\n````"},
    ]


# --- Deletion ----------------------------------------------------------------------------------


def test_deleting_a_conversation_removes_its_files_from_storage(media: Path, owner: User) -> None:
    image = make(owner, "chart.png", image_bytes())
    text = make(owner, "notes.md", b"# notes")
    message = sent_message(owner, image, text)
    assert len(stored_files(media)) == 3  # the image, its thumbnail, the text file
    conversation_delete(conversation=message.conversation)
    assert not Attachment.objects.exists()
    assert stored_files(media) == []


def test_an_images_thumbnail_and_fitted_copy_go_with_it(media: Path, owner: User) -> None:
    image = make(owner, "photo.jpg", noisy_bytes("JPEG", (3000, 2000)))
    service.attachment_content(text="", attachments=[image], capabilities=None)
    names = sorted(p.name for p in stored_files(media))
    stem = Path(image.file.name).stem
    assert names == sorted([f"{stem}.jpg", f"{stem}.thumb.webp", f"{stem}.fit.jpg"])
    image.delete()
    assert stored_files(media) == []


def test_a_deletion_rolled_back_keeps_the_file(media: Path, owner: User) -> None:
    from django.db import transaction

    attachment = make(owner, "a.txt", b"a")
    pk = attachment.pk
    with pytest.raises(RuntimeError), transaction.atomic():
        attachment.delete()
        raise RuntimeError("rolled back")
    assert Attachment.objects.filter(pk=pk).exists()
    assert len(stored_files(media)) == 1


def test_unsent_uploads_older_than_a_day_are_cleaned_up(media: Path, owner: User) -> None:
    old = make(owner, "old.txt", b"old")
    Attachment.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=2))
    fresh = make(owner, "fresh.txt", b"fresh")
    sent = make(owner, "sent.txt", b"sent")
    sent_message(owner, sent)
    Attachment.objects.filter(pk=sent.pk).update(created_at=timezone.now() - timedelta(days=2))
    out = io.StringIO()
    call_command("chat_attachments_cleanup", stdout=out)
    assert set(Attachment.objects.values_list("pk", flat=True)) == {fresh.pk, sent.pk}
    assert len(stored_files(media)) == 2
    assert "1" in out.getvalue()


def test_the_accepted_extensions_are_offered_by_the_file_picker(client: Any, owner: User) -> None:
    client.force_login(owner)
    page = client.get("/").content.decode()
    accept = page.split('id="attach-input"', 1)[1].split('accept="', 1)[1].split('"', 1)[0]
    offered = set(accept.split(","))
    assert set(service.accepted_extensions()) <= offered


def test_text_that_begins_like_a_binary_format_is_still_text(media: Path, owner: User) -> None:
    attachment = make(owner, "tags.txt", b"ID3 tags hold a song's title and artist.\n")
    assert attachment.kind == "text"
