"""Share links: make one (a snapshot of the branch on screen), revoke it, count its
views, and continue a shared conversation as one's own copy. Reads: ``selectors``."""

from __future__ import annotations

import io
import logging
import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from chat.dbtext import storable_text
from chat.models import Attachment, Conversation, Message
from chat.selectors import conversation_get_for_user, conversation_tree
from chat.services.attachments import (
    attachment_model_image,
    attachment_thumbnail,
    attachment_versions_make,
)

from . import snapshot
from .models import TOKEN_BYTES, SharedImage, SharedLink

logger = logging.getLogger(__name__)

_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp", "image/gif": "gif"}


def public_links_allowed() -> bool:
    """Whether the admin lets people make links for anyone (``CHAT_PUBLIC_SHARE_LINKS``)."""
    return bool(settings.CHAT_PUBLIC_SHARE_LINKS)


def shared_link_create(
    *, owner: AbstractBaseUser, conversation_id: int, audience: str
) -> SharedLink:
    """A new link to a snapshot of the branch of ``owner``'s conversation
    ``conversation_id`` that is on screen now (``Conversation.current_leaf``; a question
    several models answered side by side comes with all its replies), with copies of its
    images. ``audience``: ``SharedLink.Audience`` value.

    Raises Http404 when the conversation is not ``owner``'s, ValidationError (a
    sentence for the person) for an unknown audience, a public link while the admin
    forbids them, an empty conversation, or a reply still being written."""
    conversation = conversation_get_for_user(user=owner, pk=conversation_id)
    if audience not in SharedLink.Audience.values:
        raise ValidationError(_("Choose who can open the link."))
    if audience == SharedLink.Audience.PUBLIC and not public_links_allowed():
        raise ValidationError(
            _(
                "Links for anyone are turned off on this server. Share with signed-in "
                "users of this site instead."
            )
        )
    tree = conversation_tree(conversation_id=conversation.pk)
    ids = tree.thread(conversation.current_leaf_id)
    if not ids:
        raise ValidationError(_("There is nothing to share yet: send a message first."))
    compare_ids = tree.children.get(ids[-1], []) if tree.is_compare(ids[-1]) else []
    rows = {
        m.pk: m
        for m in Message.objects.filter(pk__in=[*ids, *compare_ids]).prefetch_related("attachments")
    }
    if any(m.status == Message.Status.STREAMING for m in rows.values()):
        raise ValidationError(_("Wait for the reply to finish before sharing."))
    ordered = [(rows[i], False) for i in ids] + [(rows[i], True) for i in compare_ids]
    entries = [snapshot.message_entry(m, compare=compare) for m, compare in ordered]
    with transaction.atomic():
        link = SharedLink.objects.create(
            token=secrets.token_urlsafe(TOKEN_BYTES),
            owner=owner,
            conversation=conversation,
            audience=audience,
            title=conversation.title[:200],
            snapshot={
                "version": snapshot.VERSION,
                "provider": conversation.provider,
                "model": conversation.model,
                "messages": entries,
            },
        )
        copied = False
        for index, (message, _compare) in enumerate(ordered):
            files = entries[index]["files"]
            for position, attachment in enumerate(message.attachments.all()):
                if attachment.kind != Attachment.Kind.IMAGE:
                    continue
                image = _image_copy(
                    link=link, attachment=attachment, index=index, position=position
                )
                if image is not None:
                    files[position]["image"] = image.pk
                    copied = True
        if copied:
            link.save(update_fields=["snapshot"])
    return link


def _image_copy(
    *, link: SharedLink, attachment: Attachment, index: int, position: int
) -> SharedImage | None:
    """A copy of the image ``attachment`` for ``link``: its thumbnail and the upright
    copy without metadata that models receive (never the uploaded original, whose EXIF
    may hold a GPS position). None when the image cannot be read (it is then named
    only)."""
    thumbnail = attachment_thumbnail(attachment=attachment)
    if thumbnail is None:
        return None
    try:
        content_type, data = attachment_model_image(attachment=attachment)
    except OSError:
        logger.warning("attachment %s: not copied into a share link", attachment.pk)
        return None
    width, height = _size_of(data)
    image = SharedImage(
        link=link,
        message_index=index,
        position=position,
        name=attachment.name,
        content_type=content_type,
        width=width,
        height=height,
    )
    stem = secrets.token_hex(16)
    image.file.save(f"{stem}.{_EXTENSIONS.get(content_type, 'bin')}", ContentFile(data), save=False)
    image.thumb.save(f"{stem}.thumb.webp", ContentFile(thumbnail[1]), save=False)
    image.save()
    return image


def _size_of(data: bytes) -> tuple[int | None, int | None]:
    """(width, height) of an image's bytes, (None, None) when Pillow cannot tell."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None, None


def shared_image_files_delete(sender: type, instance: SharedImage, **kwargs: Any) -> None:
    """``post_delete`` receiver: remove the image's files from storage once the deletion
    is committed (cascades from a link, a conversation or a user included)."""
    names = [f.name for f in (instance.file, instance.thumb) if f.name]
    storage = instance.file.storage

    def remove() -> None:
        for name in names:
            try:
                storage.delete(name)
            except Exception:
                logger.warning("shared image file %s could not be deleted", name, exc_info=True)

    transaction.on_commit(remove, using=kwargs.get("using"))


def shared_link_revoke(*, owner: AbstractBaseUser, link_id: int) -> SharedLink:
    """Revoke ``owner``'s link ``link_id`` (it stops working at once; revoking twice
    keeps the first time). SharedLink.DoesNotExist for a link that is not theirs."""
    link = SharedLink.objects.get(pk=link_id, owner=owner)
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])
    return link


def shared_links_revoke(*, link_ids: list[int]) -> int:
    """Revoke these links, anyone's (the admin's action). Returns how many were active."""
    return SharedLink.objects.filter(pk__in=link_ids, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def shared_link_viewed(*, link: SharedLink, viewer: AbstractBaseUser | None) -> None:
    """Count one view of ``link`` (its owner's own views are not counted)."""
    if viewer is not None and viewer.is_authenticated and viewer.pk == link.owner_id:
        return
    SharedLink.objects.filter(pk=link.pk).update(
        view_count=F("view_count") + 1, last_viewed_at=timezone.now()
    )


def shared_link_continue(
    *, link: SharedLink, viewer: AbstractBaseUser
) -> tuple[Conversation, bool]:
    """A new conversation of ``viewer`` holding the snapshot's messages as one branch
    (each message's parent the one before; replies compared side by side stay siblings
    of their question), with copies of its images as ``viewer``'s attachments, on the
    model the conversation had when shared. Nothing of the owner's settings (system
    prompt, temperature) is copied. Returns (the conversation, whether images were left
    out because they would take ``viewer`` over their storage quota)."""
    data = link.snapshot
    entries = [
        e
        for e in data.get("messages", [])
        if isinstance(e, dict) and e.get("role") in snapshot.ROLES
    ]
    images = {image.pk: image for image in link.images.all()}
    wanted = [
        images[f["image"]]
        for e in entries
        for f in e.get("files", [])
        if isinstance(f, dict) and f.get("image") in images
    ]
    with_images = _within_quota(viewer, [image.file for image in wanted])
    now = timezone.now()
    with transaction.atomic():
        conversation = Conversation.objects.create(
            owner=viewer,
            title=storable_text(link.title)[:200],
            provider=str(data.get("provider") or ""),
            model=str(data.get("model") or ""),
            created_at=now,
            updated_at=now,
        )
        previous: int | None = None  # the last message of the branch so far
        question: int | None = None  # the question compared replies answer
        for entry in entries:
            is_compare = bool(entry.get("compare")) and question is not None
            status = entry.get("status")
            message = Message.objects.create(
                conversation=conversation,
                parent_id=question if is_compare else previous,
                role=entry["role"],
                content=storable_text(str(entry.get("content") or "")),
                content_html=str(entry.get("html") or "")
                if entry["role"] == Message.Role.ASSISTANT
                else "",
                provider=str(entry.get("provider") or "")[:64],
                model=str(entry.get("model") or "")[:200],
                status=status if status in snapshot.STATUSES else Message.Status.COMPLETE,
                finish_reason=str(entry.get("finish_reason") or "")[:32],
                error=str(entry.get("error") or ""),
                created_at=parse_datetime(str(entry.get("created_at") or "")) or now,
            )
            if with_images:
                position = 0
                for f in entry.get("files", []):
                    image = images.get(f.get("image")) if isinstance(f, dict) else None
                    if image is not None:
                        _attachment_from_image(
                            image, owner=viewer, message=message, position=position
                        )
                        position += 1
            if not is_compare:
                previous = message.pk
                question = message.pk if entry["role"] == Message.Role.USER else None
        # A comparison not decided yet stays one: the branch ends at its question.
        conversation.current_leaf_id = previous
        conversation.save(update_fields=["current_leaf"])
    return conversation, bool(wanted) and not with_images


def _within_quota(viewer: AbstractBaseUser, files: list[Any]) -> bool:
    """Whether copies of ``files`` fit in ``viewer``'s attachment quota
    (``CHAT_ATTACHMENT_QUOTA_BYTES``; 0 or less: no quota)."""
    quota = settings.CHAT_ATTACHMENT_QUOTA_BYTES
    if not files or quota <= 0:
        return True
    try:
        needed = sum(f.size for f in files)
    except OSError:
        return False
    used = Attachment.objects.filter(owner=viewer).aggregate(total=Sum("size"))["total"] or 0
    return used + needed <= quota


def _attachment_from_image(
    image: SharedImage, *, owner: AbstractBaseUser, message: Message, position: int
) -> None:
    """``owner``'s attachment on ``message``: a copy of the shared image (its own file,
    so deleting either never breaks the other), with its thumbnail made now."""
    try:
        with image.file.open("rb") as handle:
            data = handle.read()
    except OSError:
        logger.warning("shared image %s: file missing, not copied", image.pk)
        return
    attachment = Attachment(
        owner=owner,
        message=message,
        name=image.name,
        content_type=image.content_type,
        kind=Attachment.Kind.IMAGE,
        size=len(data),
        width=image.width,
        height=image.height,
        position=position,
    )
    extension = _EXTENSIONS.get(image.content_type, "bin")
    attachment.file.save(f"{secrets.token_hex(16)}.{extension}", ContentFile(data), save=False)
    attachment.save()
    attachment_versions_make(attachment=attachment, data=data)
