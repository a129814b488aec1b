"""Attachments: files a person attaches to a message (images, PDFs, text files).

A file is checked and stored as soon as it is uploaded (``attachment_create``), before
the message exists; sending the message links it (``attachments_for_send`` then
``attachments_link``). What a model receives is built by ``attachment_content``: OpenAI
content parts, which each provider maps to its own form.

Checks, each refusal a ValidationError naming the file, nothing stored:

- the kind comes from the extension, and the content must be that kind: images are
  sniffed by their magic bytes (filetype) and opened by Pillow; PDFs are read by pypdf
  (encrypted or damaged ones refused); text files must be UTF-8 (a BOM is fine) without
  NUL characters, and JSON must parse;
- limits (settings): ``CHAT_ATTACHMENT_MAX_BYTES`` per file,
  ``CHAT_ATTACHMENTS_PER_MESSAGE`` per message, ``CHAT_ATTACHMENT_QUOTA_BYTES`` per person
  (every file they keep), ``CHAT_ATTACHMENT_MAX_TEXT_CHARS`` of text kept from a PDF or
  a text file (the rest is cut, and the model is told so).

Files are stored through Django's storage API under a random name (``attachments/
YYYY/MM/<hex>.<ext>``); ``Attachment.name`` keeps the person's file name, cleaned. An
image has two more versions beside it, made at upload: a small thumbnail for the page
and the copy models receive, fitted to what providers accept (see "Image versions"). A
file leaves the storage when its row is deleted (``attachment_file_delete``, connected to
``post_delete`` in ``chat.apps``; cascades from a message, a conversation or a user
included), after the transaction commits. Uploads never sent are removed after a day by
``attachments_expire_unsent`` (``manage.py chat_attachments_cleanup``).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import unicodedata
import uuid
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Sum
from django.template.defaultfilters import filesizeformat
from django.utils import timezone
from django.utils.text import get_text_list
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from ..models import Attachment

logger = logging.getLogger("chat.services")

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_PER_MESSAGE = 10
DEFAULT_QUOTA_BYTES = 500 * 1024 * 1024
DEFAULT_MAX_TEXT_CHARS = 200_000
# An image larger than this (in pixels) is refused: decoding it would take too much
# memory (a "decompression bomb" is a small file that decodes to gigabytes).
MAX_IMAGE_PIXELS = 50_000_000
UNSENT_MAX_AGE = timedelta(days=1)
NAME_MAX_CHARS = 255


@dataclass(frozen=True)
class _ImageType:
    content_type: str
    pillow_format: str
    label: str  # "PNG", for messages
    # Other formats Pillow names for such a file: a phone's JPEG may be an MPO (a JPEG
    # followed by a second picture, a depth map or a preview).
    also: tuple[str, ...] = ()


IMAGE_TYPES: dict[str, _ImageType] = {
    "png": _ImageType("image/png", "PNG", "PNG"),
    "jpg": _ImageType("image/jpeg", "JPEG", "JPEG", ("MPO",)),
    "jpeg": _ImageType("image/jpeg", "JPEG", "JPEG", ("MPO",)),
    "webp": _ImageType("image/webp", "WEBP", "WebP"),
    "gif": _ImageType("image/gif", "GIF", "GIF"),
}

# Text files by extension: (content type, language of the code fence sent to a model).
TEXT_TYPES: dict[str, tuple[str, str]] = {
    "txt": ("text/plain", "text"),
    "text": ("text/plain", "text"),
    "log": ("text/plain", "text"),
    "md": ("text/markdown", "markdown"),
    "markdown": ("text/markdown", "markdown"),
    "rst": ("text/x-rst", "rst"),
    "csv": ("text/csv", "csv"),
    "tsv": ("text/tab-separated-values", "tsv"),
    "json": ("application/json", "json"),
    "jsonl": ("application/jsonl", "json"),
    "yaml": ("application/yaml", "yaml"),
    "yml": ("application/yaml", "yaml"),
    "toml": ("application/toml", "toml"),
    "ini": ("text/plain", "ini"),
    "cfg": ("text/plain", "ini"),
    "conf": ("text/plain", "ini"),
    "xml": ("application/xml", "xml"),
    "html": ("text/html", "html"),
    "htm": ("text/html", "html"),
    "css": ("text/css", "css"),
    "scss": ("text/x-scss", "scss"),
    "js": ("text/javascript", "javascript"),
    "mjs": ("text/javascript", "javascript"),
    "cjs": ("text/javascript", "javascript"),
    "jsx": ("text/javascript", "jsx"),
    "ts": ("text/x-typescript", "typescript"),
    "tsx": ("text/x-typescript", "tsx"),
    "py": ("text/x-python", "python"),
    "pyi": ("text/x-python", "python"),
    "ipynb": ("application/json", "json"),
    "java": ("text/x-java", "java"),
    "kt": ("text/x-kotlin", "kotlin"),
    "kts": ("text/x-kotlin", "kotlin"),
    "scala": ("text/x-scala", "scala"),
    "c": ("text/x-c", "c"),
    "h": ("text/x-c", "c"),
    "cpp": ("text/x-c++", "cpp"),
    "cc": ("text/x-c++", "cpp"),
    "hpp": ("text/x-c++", "cpp"),
    "cs": ("text/x-csharp", "csharp"),
    "go": ("text/x-go", "go"),
    "rs": ("text/x-rust", "rust"),
    "rb": ("text/x-ruby", "ruby"),
    "php": ("text/x-php", "php"),
    "swift": ("text/x-swift", "swift"),
    "dart": ("text/x-dart", "dart"),
    "lua": ("text/x-lua", "lua"),
    "pl": ("text/x-perl", "perl"),
    "r": ("text/x-r", "r"),
    "sql": ("application/sql", "sql"),
    "sh": ("text/x-shellscript", "bash"),
    "bash": ("text/x-shellscript", "bash"),
    "zsh": ("text/x-shellscript", "bash"),
    "ps1": ("text/plain", "powershell"),
    "bat": ("text/plain", "batch"),
    "vue": ("text/plain", "vue"),
    "svelte": ("text/plain", "svelte"),
    "tex": ("text/x-tex", "latex"),
    "graphql": ("text/plain", "graphql"),
    "proto": ("text/plain", "protobuf"),
    "diff": ("text/x-diff", "diff"),
    "patch": ("text/x-diff", "diff"),
}
# Text files known by their whole name (no extension).
TEXT_NAMES: dict[str, tuple[str, str]] = {
    "dockerfile": ("text/plain", "dockerfile"),
    "makefile": ("text/plain", "makefile"),
    "license": ("text/plain", "text"),
    "readme": ("text/plain", "text"),
}
PDF_CONTENT_TYPE = "application/pdf"

# What a sniffed file really is, for "“a.png” is a PDF, not a PNG image".
_SNIFFED_LABELS = {
    "image/png": gettext_lazy("PNG image"),
    "image/jpeg": gettext_lazy("JPEG image"),
    "image/webp": gettext_lazy("WebP image"),
    "image/gif": gettext_lazy("GIF image"),
    "application/pdf": gettext_lazy("PDF"),
    "application/zip": gettext_lazy("ZIP archive"),
}


@dataclass(frozen=True)
class _Checked:
    """What the checks found out about a file, to be stored."""

    kind: str
    content_type: str
    extension: str
    text: str = ""
    page_count: int | None = None
    width: int | None = None
    height: int | None = None


# --- Settings ---------------------------------------------------------------------------


def max_bytes() -> int:
    """The largest file accepted, in bytes (``CHAT_ATTACHMENT_MAX_BYTES``)."""
    return int(getattr(settings, "CHAT_ATTACHMENT_MAX_BYTES", DEFAULT_MAX_BYTES))


def per_message() -> int:
    """How many files one message may carry (``CHAT_ATTACHMENTS_PER_MESSAGE``)."""
    return int(getattr(settings, "CHAT_ATTACHMENTS_PER_MESSAGE", DEFAULT_PER_MESSAGE))


def quota_bytes() -> int:
    """The bytes of files one person may keep in all (``CHAT_ATTACHMENT_QUOTA_BYTES``)."""
    return int(getattr(settings, "CHAT_ATTACHMENT_QUOTA_BYTES", DEFAULT_QUOTA_BYTES))


def max_text_chars() -> int:
    """Characters of text kept from one PDF or text file (``CHAT_ATTACHMENT_MAX_TEXT_CHARS``)."""
    return int(getattr(settings, "CHAT_ATTACHMENT_MAX_TEXT_CHARS", DEFAULT_MAX_TEXT_CHARS))


def accepted_extensions() -> list[str]:
    """Every extension accepted, with its dot (".png", ".pdf", ".py"...), for the file
    picker's ``accept`` attribute."""
    return [f".{ext}" for ext in (*IMAGE_TYPES, "pdf", *TEXT_TYPES)]


# --- Upload -----------------------------------------------------------------------------


def attachment_create(*, owner: AbstractBaseUser, upload: UploadedFile) -> Attachment:
    """Check ``upload`` and store it as an attachment of ``owner`` not yet on a message.

    Returns the saved Attachment (``kind`` image, pdf or text; images with ``width`` and
    ``height`` in pixels, PDFs with ``page_count`` and their text, text files with their
    text). Raises ValidationError, naming the file, when it is too large, over the
    person's quota, of a kind not accepted, not what its extension says, a PDF that is
    encrypted or damaged, a text file that is not UTF-8 text, or JSON that does not
    parse; nothing is stored then."""
    name = clean_file_name(upload.name or "")
    size = upload.size or 0
    limit = max_bytes()
    if size > limit:
        raise ValidationError(
            _("“%(name)s” is too large (%(size)s): files can be up to %(limit)s.")
            % {"name": name, "size": filesizeformat(size), "limit": filesizeformat(limit)}
        )
    if size == 0:
        raise ValidationError(_("“%(name)s” is empty.") % {"name": name})
    _check_quota(owner=owner, name=name, size=size)
    upload.seek(0)
    data = upload.read(limit + 1)
    if len(data) > limit:  # the declared size was wrong
        raise ValidationError(
            _("“%(name)s” is too large: files can be up to %(limit)s.")
            % {"name": name, "limit": filesizeformat(limit)}
        )
    checked = _check_content(name=name, data=data)
    attachment = Attachment(
        owner=owner,
        name=name,
        content_type=checked.content_type,
        kind=checked.kind,
        size=len(data),
        text=checked.text,
        page_count=checked.page_count,
        width=checked.width,
        height=checked.height,
    )
    # A random stored name: the person's file name never becomes a path.
    attachment.file.save(f"{uuid.uuid4().hex}.{checked.extension}", ContentFile(data), save=False)
    try:
        attachment.save()
    except BaseException:
        attachment.file.storage.delete(attachment.file.name)
        raise
    # The thumbnail and the copy models receive, now: the image is decoded once, and
    # neither the page nor a reply waits for them later.
    attachment_versions_make(attachment=attachment, data=data)
    return attachment


def clean_file_name(raw: str) -> str:
    """A file name fit to show and to store in ``Attachment.name``: the last part of a
    path, without control characters, with runs of spaces made one, at most 255
    characters (the extension kept); "file" when nothing is left."""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        " " if unicodedata.category(ch).startswith(("C", "Z")) else ch
        for ch in unicodedata.normalize("NFC", name)
    )
    name = " ".join(name.split()).strip(". ") if name.strip(". ") else ""
    if not name:
        return "file"
    if len(name) > NAME_MAX_CHARS:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16:
            name = f"{stem[: NAME_MAX_CHARS - len(ext) - 1]}.{ext}"
        else:
            name = name[:NAME_MAX_CHARS]
    return name


def _check_quota(*, owner: AbstractBaseUser, name: str, size: int) -> None:
    quota = quota_bytes()
    used = Attachment.objects.filter(owner=owner).aggregate(total=Sum("size"))["total"] or 0
    if used + size > quota:
        raise ValidationError(
            _(
                "“%(name)s” was not added: your files would take more than %(quota)s, the "
                "limit per person (%(used)s are used). Delete conversations with files you "
                "no longer need."
            )
            % {"name": name, "quota": filesizeformat(quota), "used": filesizeformat(used)}
        )


def _extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def _unsupported(name: str) -> ValidationError:
    return ValidationError(
        _(
            "“%(name)s” cannot be attached: only images (PNG, JPEG, WebP, GIF), PDFs and "
            "text files (code, Markdown, CSV, JSON, plain text) can."
        )
        % {"name": name}
    )


def _sniff(data: bytes) -> str | None:
    """The MIME type the content's magic bytes say (None: not a known binary format)."""
    import filetype

    kind = filetype.guess(data[:8192])
    return kind.mime if kind is not None else None


def _not_what_it_says(name: str, sniffed: str, expected: str) -> ValidationError:
    label = _SNIFFED_LABELS.get(sniffed) or sniffed
    return ValidationError(
        _("“%(name)s” is not what its extension says: it is a %(actual)s, not a %(expected)s.")
        % {"name": name, "actual": label, "expected": expected}
    )


def _check_content(*, name: str, data: bytes) -> _Checked:
    ext = _extension(name)
    if ext in IMAGE_TYPES:
        return _check_image(name=name, ext=ext, data=data)
    if ext == "pdf":
        return _check_pdf(name=name, data=data)
    if ext in TEXT_TYPES or (not ext and name.lower() in TEXT_NAMES):
        return _check_text(name=name, ext=ext, data=data)
    raise _unsupported(name)


def _check_image(*, name: str, ext: str, data: bytes) -> _Checked:
    from PIL import Image

    expected = IMAGE_TYPES[ext]
    sniffed = _sniff(data)
    expected_label = _("%(format)s image") % {"format": expected.label}
    if sniffed != expected.content_type:
        if sniffed is None:
            raise ValidationError(
                _("“%(name)s” is not a %(expected)s: it is damaged or another kind of file.")
                % {"name": name, "expected": expected_label}
            )
        raise _not_what_it_says(name, sniffed, expected_label)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                width, height = image.size
                if image.format not in (expected.pillow_format, *expected.also):
                    raise _not_what_it_says(
                        name, f"image/{(image.format or '').lower()}", expected_label
                    )
                if width * height > MAX_IMAGE_PIXELS:
                    raise ValidationError(
                        _(
                            "“%(name)s” is too large an image (%(width)d × %(height)d pixels): "
                            "images can have up to %(limit)d million pixels."
                        )
                        % {
                            "name": name,
                            "width": width,
                            "height": height,
                            "limit": MAX_IMAGE_PIXELS // 1_000_000,
                        }
                    )
                if _orientation(image.info.get("exif")) in _ORIENTATIONS_TURNED:
                    # Shown turned a quarter (browsers, and what models receive, follow
                    # the EXIF orientation): the size the page reserves is the turned one.
                    width, height = height, width
                image.verify()
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(
            _("“%(name)s” is too large an image to open.") % {"name": name}
        ) from None
    except Exception:
        raise ValidationError(
            _("“%(name)s” is a damaged %(expected)s: it cannot be opened.")
            % {"name": name, "expected": expected_label}
        ) from None
    return _Checked(
        kind=Attachment.Kind.IMAGE,
        content_type=expected.content_type,
        extension="jpg" if ext == "jpeg" else ext,
        width=width,
        height=height,
    )


def _orientation(exif: bytes | None) -> int | None:
    """The EXIF orientation (1 to 8) in the raw EXIF block ``exif``, read without
    decoding the image (None when there is none or it cannot be read)."""
    if not exif:
        return None
    from PIL import Image

    try:
        parsed = Image.Exif()
        parsed.load(exif)
        return parsed.get(_EXIF_ORIENTATION)
    except Exception:
        return None


def _check_pdf(*, name: str, data: bytes) -> _Checked:
    from pypdf import PasswordType, PdfReader

    damaged = ValidationError(_("“%(name)s” is damaged or not a PDF.") % {"name": name})
    sniffed = _sniff(data)
    if sniffed is not None and sniffed != PDF_CONTENT_TYPE:
        raise _not_what_it_says(name, sniffed, _("PDF"))
    if sniffed is None:
        raise damaged
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            # Encrypted with an owner password only (printing or copying restricted),
            # a PDF still opens with an empty password: that one is read.
            try:
                opened = reader.decrypt("")
            except Exception:
                opened = PasswordType.NOT_DECRYPTED
            if opened == PasswordType.NOT_DECRYPTED:
                raise ValidationError(
                    _(
                        "“%(name)s” is password-protected: remove the password (save an "
                        "unprotected copy) and attach it again."
                    )
                    % {"name": name}
                )
        pages = reader.pages
        page_count = len(pages)
        text = _pdf_text(pages)
    except ValidationError:
        raise
    except Exception:
        logger.info("attachment %r: PDF not readable", name, exc_info=True)
        raise damaged from None
    if page_count == 0:
        raise damaged
    return _Checked(
        kind=Attachment.Kind.PDF,
        content_type=PDF_CONTENT_TYPE,
        extension="pdf",
        text=text,
        page_count=page_count,
    )


def _pdf_text(pages: Iterable[Any]) -> str:
    """The text of the PDF's pages, a blank line between pages, cut at the text limit.
    A page whose text cannot be extracted is skipped (a scan, or a broken font)."""
    limit = max_text_chars()
    parts: list[str] = []
    length = 0
    for page in pages:
        try:
            text = (page.extract_text() or "").strip()
        except Exception:
            logger.info("a PDF page's text could not be extracted", exc_info=True)
            continue
        if not text:
            continue
        parts.append(text)
        length += len(text) + 2
        if length > limit:
            break
    return _cut("\n\n".join(parts), limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return (
        text[:limit]
        + "\n\n"
        + (
            _("[… cut here: only the first %(limit)s characters are kept]")
            % {"limit": f"{limit:,}"}
        )
    )


def _check_text(*, name: str, ext: str, data: bytes) -> _Checked:
    content_type, _lang = TEXT_TYPES.get(ext) or TEXT_NAMES[name.lower()]
    # Decoded first: text that happens to begin like a binary format ("ID3", "BM") is
    # still text. Only what is not text is sniffed, to say what it really is.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        sniffed = _sniff(data)
        if sniffed is not None:
            raise _not_what_it_says(name, sniffed, _("text file"))
        if text is not None:
            raise ValidationError(
                _("“%(name)s” is not a text file: it holds binary data.") % {"name": name}
            )
        raise ValidationError(
            _(
                "“%(name)s” is not UTF-8 text: it is a binary file or uses another "
                "encoding (save it as UTF-8 and attach it again)."
            )
            % {"name": name}
        )
    if ext == "json":
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            raise ValidationError(
                _("“%(name)s” is not valid JSON: %(error)s (line %(line)d, column %(column)d).")
                % {"name": name, "error": e.msg, "line": e.lineno, "column": e.colno}
            ) from None
    return _Checked(
        kind=Attachment.Kind.TEXT,
        content_type=content_type,
        extension=ext or "txt",
        text=_cut(text, max_text_chars()),
    )


# --- Sending ----------------------------------------------------------------------------


def attachments_for_send(*, owner: AbstractBaseUser, ids: Sequence[int]) -> list[Attachment]:
    """The attachments ``ids`` of ``owner`` not yet on a message, in the order given (an
    id given twice counts once). Raises ValidationError when there are more than
    ``CHAT_ATTACHMENTS_PER_MESSAGE``, or when an id is unknown, another person's or
    already sent (one message for all three: nothing is told about others' files).
    Inside a transaction the rows are locked until it ends (``select_for_update``), so
    two sends cannot take the same upload."""
    wanted = list(dict.fromkeys(int(i) for i in ids))
    if not wanted:
        return []
    limit = per_message()
    if len(wanted) > limit:
        raise ValidationError(
            ngettext(
                "A message can carry at most %(limit)d file (this one has %(count)d).",
                "A message can carry at most %(limit)d files (this one has %(count)d).",
                limit,
            )
            % {"limit": limit, "count": len(wanted)}
        )
    rows = Attachment.objects.filter(owner=owner, pk__in=wanted, message__isnull=True)
    if transaction.get_connection().in_atomic_block:
        rows = rows.select_for_update()
    found = {attachment.pk: attachment for attachment in rows}
    if len(found) != len(wanted):
        raise ValidationError(
            _(
                "An attached file is no longer available (removed, or already sent). Remove "
                "it from the message and attach it again."
            )
        )
    return [found[i] for i in wanted]


def attachments_link(*, attachments: Sequence[Attachment], message_id: int) -> None:
    """Put ``attachments`` (from ``attachments_for_send``) on message ``message_id``, in
    that order (``position``).
    Raises ValidationError when one of them was sent meanwhile (another tab): call it in
    the transaction that saves the message, so that nothing is saved then."""
    if not attachments:
        return
    ids = [attachment.pk for attachment in attachments]
    linked = Attachment.objects.filter(pk__in=ids, message__isnull=True).update(
        message_id=message_id
    )
    if linked != len(ids):
        raise ValidationError(
            _("An attached file was sent meanwhile (in another tab?). Attach it again.")
        )
    # In the order the person attached them (uploads finish in any order).
    for position, attachment in enumerate(attachments):
        attachment.message_id = message_id
        attachment.position = position
    Attachment.objects.bulk_update(attachments, ["position"])


def _capabilities_of(provider: Any, model: str) -> Any:
    """The provider's ``capabilities(model)`` (images, pdf, reasoning), or None when the
    provider does not say (unknown: everything is tried)."""
    method = getattr(provider, "capabilities", None)
    if method is None:
        return None
    try:
        return method(model)
    except Exception:
        logger.warning("capabilities of %s failed", model, exc_info=True)
        return None


def _usable_models() -> list[tuple[str, str, list[str]]]:
    """(provider name, label, models) for every usable provider, with no network call
    (this runs inside the transaction that prepares a reply): the model list the menu
    last fetched (cached), else the provider's configured or default models."""
    from ..providers import get_provider, list_providers

    result = []
    for status in list_providers():
        if not status.usable:
            continue
        provider = get_provider(status.name)
        try:
            models = provider.known_models() or list(provider.default_models)
        except Exception:
            logger.warning("models of %s unknown", status.name, exc_info=True)
            models = list(provider.default_models)
        result.append((status.name, status.label, models))
    return result


def models_that_read(kind: str, *, limit: int = 4, per_provider: int = 2) -> list[str]:
    """Up to ``limit`` models people can pick that say they read ``kind`` ("images" or
    "pdf"), as "gpt-4o (OpenAI)", at most ``per_provider`` from each provider, so that a
    few providers are named."""
    from ..providers import get_provider

    found: list[str] = []
    for name, label, models in _usable_models():
        provider = get_provider(name)
        taken = 0
        for model in models:
            capabilities = _capabilities_of(provider, model)
            if getattr(capabilities, kind, None) is True:
                found.append(f"{model} ({label})")
                taken += 1
                if taken >= per_provider or len(found) >= limit:
                    break
        if len(found) >= limit:
            break
    return found


def attachments_check_model(
    *, attachments: Sequence[Attachment], provider: str, model: str
) -> list[str]:
    """Whether ``model`` of ``provider`` can take ``attachments``; returns the notes to
    show the person (translated sentences, e.g. that a PDF goes as its extracted text).

    An image to a model whose capabilities say it reads no images raises
    ValidationError naming a few models that can. A PDF to a model that reads no PDFs is
    not refused: its text is sent instead, and a note says so. A model whose
    capabilities are unknown is given everything (a refusal then comes from the
    provider). Text files go to every model."""
    if not attachments:
        return []
    from ..providers import get_provider

    try:
        provider_obj = get_provider(provider)
    except Exception:
        return []
    capabilities = _capabilities_of(provider_obj, model)
    images = [a for a in attachments if a.kind == Attachment.Kind.IMAGE]
    pdfs = [a for a in attachments if a.kind == Attachment.Kind.PDF]
    model_name = f"{model} ({provider_obj.shown_label()})"
    if images and getattr(capabilities, "images", None) is False:
        capable = models_that_read("images")
        names = get_text_list([f"“{a.name}”" for a in images], _("and"))
        if capable:
            advice = _("Choose a model that can, for example: %(models)s.") % {
                "models": ", ".join(capable)
            }
        else:
            advice = _("None of the models available here can read images.")
        raise ValidationError(
            ngettext(
                "%(names)s is an image, and %(model)s cannot read images. %(advice)s",
                "%(names)s are images, and %(model)s cannot read images. %(advice)s",
                len(images),
            )
            % {"names": names, "model": model_name, "advice": advice}
        )
    notes: list[str] = []
    if pdfs and getattr(capabilities, "pdf", None) is False:
        for pdf in pdfs:
            if pdf.text.strip():
                notes.append(
                    _("“%(name)s” is sent as extracted text: %(model)s cannot read PDFs.")
                    % {"name": pdf.name, "model": model_name}
                )
            else:
                notes.append(
                    _(
                        "“%(name)s” has no text that could be extracted (a scan?), and "
                        "%(model)s cannot read PDFs: only its name is sent."
                    )
                    % {"name": pdf.name, "model": model_name}
                )
    return notes


# --- Image versions: a thumbnail for the page, a fitted copy for models ---------------------
#
# Two versions of an image are kept in the storage next to the original, named after it
# (``attachments/2025/06/<hex>.png`` -> ``<hex>.thumb.webp``, ``<hex>.fit.png``), made at
# upload (one decoding for both) or, for a file uploaded before they existed, when first
# needed; ``attachment_file_delete`` removes them with the original. Both are upright (the
# EXIF orientation applied) and carry no metadata (EXIF with its GPS position, XMP, text
# chunks, comments); the colour profile stays.
#
# - The thumbnail (``attachment_thumbnail``): WebP, at most ``THUMB_MAX_PX`` on its long
#   side (twice the largest the thread shows most images at, for sharp screens); the
#   first frame of an animation.
# - The fitted copy (``attachment_model_image``), what models receive: at most
#   ``FIT_MAX_PX`` on its long side and ``FIT_MAX_BYTES`` (Anthropic takes 5 MB of base64
#   and 8000 px, OpenAI scales to 2048 px itself, Gemini takes 20 MB per request, inline
#   data included), PNG for a PNG, a GIF or an image with transparency, JPEG otherwise.
#   An image already within those limits, without metadata and not turned by its EXIF
#   orientation, is sent as it was uploaded, byte for byte, and no copy is stored. A GIF
#   is always re-encoded (its first frame as PNG): OpenAI refuses animated GIFs and
#   Gemini reads no GIF at all.

THUMB_MAX_PX = 448
THUMB_CONTENT_TYPE = "image/webp"
THUMB_QUALITY = 80
FIT_MAX_PX = 2048
FIT_MAX_BYTES = 5 * 1024 * 1024 * 3 // 4  # 3.75 MB: 5 MB once in base64
FIT_JPEG_QUALITY = 85
FIT_JPEG_QUALITY_SMALLER = 75  # tried before shrinking an image still over FIT_MAX_BYTES

_EXIF_ORIENTATION = 0x0112
_ORIENTATIONS_TURNED = frozenset({5, 6, 7, 8})
_VERSION_TYPES = {"webp": "image/webp", "png": "image/png", "jpg": "image/jpeg"}
# What Pillow reads into ``Image.info`` that says nothing about the person or the place:
# an image with anything else (exif, xmp, comment, photoshop, a PNG text chunk...) is
# re-encoded before it is sent.
_PLAIN_INFO = frozenset(
    {
        "adobe",
        "adobe_transform",
        "aspect",
        "background",
        "chromaticity",
        "compression",
        "dpi",
        "duration",
        "gamma",
        "icc_profile",
        "interlace",
        "jfif",
        "jfif_density",
        "jfif_unit",
        "jfif_version",
        "loop",
        "progression",
        "progressive",
        "srgb",
        "transparency",
    }
)
# The JPEG segments that are not metadata: JFIF, the colour profile, Adobe's colour
# transform. Any other application segment (Exif, XMP, IPTC, a maker's) means re-encoding.
_PLAIN_JPEG_SEGMENTS = (("APP0", b"JFIF\x00"), ("APP2", b"ICC_PROFILE\x00"), ("APP14", b"Adobe"))


@dataclass(frozen=True)
class _Version:
    content_type: str
    extension: str  # of the stored name: "webp", "png" or "jpg"
    data: bytes


def version_names(file_name: str) -> list[str]:
    """The storage names every version of the stored file ``file_name`` may have (the
    thumbnail, the fitted copy as PNG or JPEG), whether they exist or not."""
    return [
        _version_name(file_name, "thumb", "webp"),
        _version_name(file_name, "fit", "png"),
        _version_name(file_name, "fit", "jpg"),
    ]


def _version_name(file_name: str, role: str, extension: str) -> str:
    folder, slash, base = file_name.rpartition("/")
    stem = base.rsplit(".", 1)[0] if "." in base else base
    return f"{folder}{slash}{stem}.{role}.{extension}"


def _fit_extensions(content_type: str) -> tuple[str, ...]:
    """Where to look for an image's fitted copy: PNG for a PNG or a GIF, JPEG for a JPEG,
    either for a WebP (PNG when it has transparency)."""
    if content_type in ("image/png", "image/gif"):
        return ("png",)
    if content_type == "image/webp":
        return ("jpg", "png")
    return ("jpg",)


def _complete(data: bytes, extension: str) -> bool:
    """Whether ``data`` is a whole file of its kind (not one another process is still
    writing): the format's end marker, or for WebP the length its header gives."""
    if extension == "webp":
        return (
            data[:4] == b"RIFF"
            and data[8:12] == b"WEBP"
            and int.from_bytes(data[4:8], "little") + 8 == len(data)
        )
    if extension == "png":
        return data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
    return data.startswith(b"\xff\xd8") and data.endswith(b"\xff\xd9")


def _version_read(storage: Any, name: str, extension: str) -> bytes | None:
    """The stored version ``name`` if it is there and whole; None otherwise."""
    try:
        with storage.open(name, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    except Exception:  # another storage's way of saying it is not there
        logger.info("image version %s not readable", name, exc_info=True)
        return None
    return data if _complete(data, extension) else None


def _version_store(storage: Any, name: str, data: bytes) -> None:
    """Store a version under ``name``. Made meanwhile by another request (the storage
    then picks another name): the copy just written goes, the first one stays. A
    failure is logged: the version is made again when next needed."""
    try:
        saved = storage.save(name, ContentFile(data))
        if saved != name:
            storage.delete(saved)
    except Exception:
        logger.warning("image version %s could not be stored", name, exc_info=True)


def _sendable_as_is(image: Any, size: int) -> bool:
    """Whether the opened image ``image`` (its file ``size`` bytes) can go to a model as
    uploaded: PNG, JPEG or WebP, one frame, within ``FIT_MAX_PX`` and ``FIT_MAX_BYTES``,
    with no metadata (so no EXIF orientation either)."""
    if image.format not in ("PNG", "JPEG", "WEBP") or getattr(image, "is_animated", False):
        return False
    if max(image.size) > FIT_MAX_PX or size > FIT_MAX_BYTES:
        return False
    if not set(image.info) <= _PLAIN_INFO:
        return False
    if image.format == "JPEG":
        for marker, segment in getattr(image, "applist", ()):
            if not any(marker == m and segment.startswith(p) for m, p in _PLAIN_JPEG_SEGMENTS):
                return False
    return True


def _upright(image: Any) -> Any:
    """The first frame of ``image``, turned as its EXIF orientation says, as RGB, L
    (grey) or RGBA (when something in it is transparent), with no metadata left in
    ``info``."""
    from PIL import ImageOps

    image.seek(0)
    turned = ImageOps.exif_transpose(image)
    if turned.mode not in ("RGB", "L", "RGBA"):
        turned = turned.convert("RGBA" if turned.has_transparency_data else "RGB")
    if turned.mode == "RGBA" and turned.getchannel("A").getextrema() == (255, 255):
        turned = turned.convert("RGB")  # an alpha channel with nothing transparent
    turned.info = {}
    return turned


def _encode(image: Any, pillow_format: str, icc_profile: bytes | None, **options: Any) -> bytes:
    buffer = io.BytesIO()
    if icc_profile:
        options["icc_profile"] = icc_profile
    image.save(buffer, pillow_format, **options)
    return buffer.getvalue()


def _fit_encode(image: Any, as_png: bool, icc_profile: bytes | None) -> bytes:
    """``image`` (already within ``FIT_MAX_PX``) as PNG or JPEG under ``FIT_MAX_BYTES``:
    JPEG at quality 85, then 75, then smaller; PNG smaller until it fits."""
    from PIL import Image

    quality = FIT_JPEG_QUALITY
    while True:
        if as_png:
            data = _encode(image, "PNG", icc_profile)
        else:
            data = _encode(image, "JPEG", icc_profile, quality=quality)
        if len(data) <= FIT_MAX_BYTES or max(image.size) <= 64:
            return data
        if not as_png and quality > FIT_JPEG_QUALITY_SMALLER:
            quality = FIT_JPEG_QUALITY_SMALLER
            continue
        # Bytes go with the area: aim a little under the limit.
        scale = min(0.9, (FIT_MAX_BYTES / len(data)) ** 0.5 * 0.95)
        width, height = image.size
        image = image.resize(
            (max(1, round(width * scale)), max(1, round(height * scale))),
            Image.Resampling.LANCZOS,
        )


def _versions_make(
    data: bytes, *, thumbnail: bool, fitted: bool
) -> tuple[_Version | None, _Version | None]:
    """Make the versions of the image ``data`` asked for, from one decoding: (the
    thumbnail or None, the fitted copy or None). The fitted copy is None also when the
    image goes as it is. Raises what Pillow raises for an image it cannot decode."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as source:
        as_is = fitted and _sendable_as_is(source, len(data))
        if as_is and not thumbnail:
            return None, None
        icc_profile = source.info.get("icc_profile")
        image = _upright(source)
        # Decoded now: text chunks after a PNG's pixels are in ``info`` too.
        as_is = as_is and _sendable_as_is(source, len(data))
        as_png = source.format in ("PNG", "GIF") or image.mode == "RGBA"
    image.thumbnail((FIT_MAX_PX, FIT_MAX_PX), Image.Resampling.LANCZOS)
    fit = None
    if fitted and not as_is:
        if as_png:
            fit = _Version("image/png", "png", _fit_encode(image, True, icc_profile))
        else:
            fit = _Version("image/jpeg", "jpg", _fit_encode(image, False, icc_profile))
    thumb = None
    if thumbnail:
        image.thumbnail((THUMB_MAX_PX, THUMB_MAX_PX), Image.Resampling.LANCZOS)
        thumb = _Version(
            THUMB_CONTENT_TYPE,
            "webp",
            _encode(image, "WEBP", icc_profile, quality=THUMB_QUALITY),
        )
    return thumb, fit


def attachment_versions_make(*, attachment: Attachment, data: bytes | None = None) -> None:
    """Make and store the thumbnail and, when needed, the fitted copy of the image
    ``attachment`` (``data``: its file's bytes, read from storage when None), so that
    neither the page nor a reply waits for them. Does nothing for other kinds. Never
    raises: a version that could not be made is made when first needed."""
    if attachment.kind != Attachment.Kind.IMAGE or not attachment.file.name:
        return
    try:
        if data is None:
            with attachment.file.open("rb") as handle:
                data = handle.read()
        thumb, fit = _versions_make(data, thumbnail=True, fitted=True)
    except Exception:
        logger.warning("attachment %s: image versions not made", attachment.pk, exc_info=True)
        return
    storage = attachment.file.storage
    for version, role in ((thumb, "thumb"), (fit, "fit")):
        if version is not None:
            name = _version_name(attachment.file.name, role, version.extension)
            _version_store(storage, name, version.data)


def attachment_thumbnail(*, attachment: Attachment) -> tuple[str, bytes] | None:
    """The thumbnail of the image ``attachment``: (content type ``image/webp``, its
    bytes), at most ``THUMB_MAX_PX`` pixels on its long side, upright, without
    metadata. Made and stored when missing. None when ``attachment`` is not an image or
    no thumbnail can be made (its file is missing or cannot be decoded: logged)."""
    if attachment.kind != Attachment.Kind.IMAGE or not attachment.file.name:
        return None
    storage = attachment.file.storage
    name = _version_name(attachment.file.name, "thumb", "webp")
    stored = _version_read(storage, name, "webp")
    if stored is not None:
        return THUMB_CONTENT_TYPE, stored
    try:
        with attachment.file.open("rb") as handle:
            data = handle.read()
        thumb, _fit = _versions_make(data, thumbnail=True, fitted=False)
    except Exception:
        logger.warning("attachment %s: no thumbnail", attachment.pk, exc_info=True)
        return None
    assert thumb is not None
    _version_store(storage, name, thumb.data)
    return thumb.content_type, thumb.data


def attachment_model_image(*, attachment: Attachment) -> tuple[str, bytes]:
    """The image ``attachment`` as models receive it: (content type, bytes). The fitted
    copy (at most ``FIT_MAX_PX`` on its long side and ``FIT_MAX_BYTES``, upright, no
    metadata; PNG or JPEG), read from storage or made and stored there the first time;
    the original, byte for byte, when it is within those limits already. Raises OSError
    when the original is missing from storage. An image that cannot be re-encoded is
    sent as uploaded (logged)."""
    storage = attachment.file.storage
    for extension in _fit_extensions(attachment.content_type):
        name = _version_name(attachment.file.name, "fit", extension)
        stored = _version_read(storage, name, extension)
        if stored is not None:
            return _VERSION_TYPES[extension], stored
    with attachment.file.open("rb") as handle:
        data = handle.read()
    try:
        _thumb, fit = _versions_make(data, thumbnail=False, fitted=True)
    except Exception:
        logger.warning("attachment %s: sent as uploaded", attachment.pk, exc_info=True)
        return attachment.content_type, data
    if fit is None:
        return attachment.content_type, data
    _version_store(storage, _version_name(attachment.file.name, "fit", fit.extension), fit.data)
    return fit.content_type, fit.data


# --- What a model receives --------------------------------------------------------------


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in ``text``."""
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return "`" * max(3, longest + 1)


def _language(attachment: Attachment) -> str:
    ext = _extension(attachment.name)
    entry = TEXT_TYPES.get(ext) or TEXT_NAMES.get(attachment.name.lower())
    return entry[1] if entry else "text"


def _data_url(attachment: Attachment) -> str:
    if attachment.kind == Attachment.Kind.IMAGE:
        content_type, data = attachment_model_image(attachment=attachment)
    else:
        content_type = attachment.content_type
        with attachment.file.open("rb") as handle:
            data = handle.read()
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def attachment_text_part(attachment: Attachment) -> dict[str, str]:
    """A text file, or a PDF's extracted text, as one OpenAI text content part, with the
    file's name: ``{"type": "text", "text": "File: notes.md\\n```markdown\\n...\\n```"}``."""
    if attachment.kind == Attachment.Kind.PDF:
        pages = attachment.page_count or 0
        if attachment.text.strip():
            header = f"File: {attachment.name} (text extracted from the PDF, {pages} pages)"
            return {"type": "text", "text": f"{header}\n\n{attachment.text}"}
        return {
            "type": "text",
            "text": f"File: {attachment.name} (a PDF of {pages} pages; no text could be "
            "extracted from it)",
        }
    fence = _fence(attachment.text)
    body = attachment.text if attachment.text.endswith("\n") else attachment.text + "\n"
    return {
        "type": "text",
        "text": f"File: {attachment.name}\n{fence}{_language(attachment)}\n{body}{fence}",
    }


def attachment_content(
    *, text: str, attachments: Sequence[Attachment], capabilities: Any = None
) -> str | list[dict[str, Any]]:
    """The ``content`` of a user turn in the history sent to a model.

    ``text`` alone (a str) when there are no attachments; otherwise a list of OpenAI
    content parts: first the files, in the order attached (models answer long documents
    best with the question after them), then the message text (left out when empty):

    - a text file: ``{"type": "text", "text": "File: <name>\\n```<lang>\\n...\\n```"}``;
    - an image: ``{"type": "image_url", "image_url": {"url": "data:<mime>;base64,..."}}``,
      fitted to what providers accept (``attachment_model_image``);
    - a PDF: ``{"type": "file", "file": {"filename": name, "file_data":
      "data:application/pdf;base64,..."}}`` unless ``capabilities.pdf`` is False (the
      model reads no PDFs), then a text part with its name and extracted text.

    ``capabilities``: the model's ``ModelCapabilities`` (None: unknown). Reads images
    and PDFs from storage (OSError when a file is missing)."""
    if not attachments:
        return text
    native_pdf = getattr(capabilities, "pdf", None) is not False
    parts: list[dict[str, Any]] = []
    for attachment in attachments:
        if attachment.kind == Attachment.Kind.IMAGE:
            parts.append({"type": "image_url", "image_url": {"url": _data_url(attachment)}})
        elif attachment.kind == Attachment.Kind.PDF and native_pdf:
            parts.append(
                {
                    "type": "file",
                    "file": {"filename": attachment.name, "file_data": _data_url(attachment)},
                }
            )
        else:
            parts.append(attachment_text_part(attachment))
    if text:
        parts.append({"type": "text", "text": text})
    return parts


# --- Deleting ---------------------------------------------------------------------------


def attachment_delete_unsent(*, owner: AbstractBaseUser, attachment_id: int) -> bool:
    """Delete ``owner``'s attachment ``attachment_id`` if it is not on a message yet (a
    chip removed from the message box). Returns whether one was deleted (False: unknown,
    another person's, or already sent)."""
    deleted, _by_model = Attachment.objects.filter(
        pk=attachment_id, owner=owner, message__isnull=True
    ).delete()
    return bool(deleted)


def attachments_expire_unsent(*, older_than: timedelta = UNSENT_MAX_AGE) -> int:
    """Delete the uploads never sent with a message, older than ``older_than`` (a day by
    default), with their files. Returns how many were deleted. Run by
    ``manage.py chat_attachments_cleanup``."""
    cutoff = timezone.now() - older_than
    doomed = Attachment.objects.filter(message__isnull=True, created_at__lt=cutoff)
    count = 0
    for attachment in doomed.iterator(chunk_size=500):
        attachment.delete()
        count += 1
    return count


def attachment_file_delete(sender: type, instance: Attachment, **kwargs: Any) -> None:
    """``post_delete`` receiver: remove the row's file from storage, with an image's
    thumbnail and fitted copy, once the deletion is committed (a rolled back deletion
    keeps them). Cascades from a message, a conversation or a user reach it too:
    Django's collector sends the signal for each row."""
    name = instance.file.name
    if not name:
        return
    storage = instance.file.storage
    names = [name, *version_names(name)] if instance.kind == Attachment.Kind.IMAGE else [name]

    def remove() -> None:
        for doomed in names:
            try:
                storage.delete(doomed)
            except Exception:
                logger.warning("attachment file %s could not be deleted", doomed, exc_info=True)

    transaction.on_commit(remove, using=kwargs.get("using"))
