"""Branches of a conversation (a tree of messages, see ``chat.tree``): which branch is
shown, deleting one, forking a branch into a new conversation."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..dbtext import storable_text
from ..models import Attachment, Conversation, Message
from ..selectors import branch_end, conversation_tree
from .attachments import attachment_versions_make

# Copied onto a forked or edited message: everything but ids, links and the file.
_ATTACHMENT_FIELDS = (
    "position",
    "name",
    "content_type",
    "kind",
    "size",
    "text",
    "page_count",
    "width",
    "height",
)
_MESSAGE_FIELDS = (
    "role",
    "content",
    "content_html",
    "provider",
    "model",
    "status",
    "finish_reason",
    "reasoning",
    "error",
    "error_kind",
    "error_detail",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "context_trimmed",
    "time_to_first_token_ms",
    "duration_ms",
    "reasoning_ms",
    "created_at",
)


def attachments_copy(*, source_message_id: int, target_message_id: int) -> int:
    """Give message ``target_message_id`` a copy of each attachment of
    ``source_message_id`` (an edited message keeps its files; a fork has its own). Each
    copy has its own stored file, so deleting one never breaks the other. Returns how
    many were copied."""
    copied = 0
    for attachment in Attachment.objects.filter(message_id=source_message_id):
        with attachment.file.open("rb") as source:
            data = source.read()
        copy = Attachment(
            owner_id=attachment.owner_id,
            message_id=target_message_id,
            **{name: getattr(attachment, name) for name in _ATTACHMENT_FIELDS},
        )
        copy.file.save(attachment.file.name.rsplit("/", 1)[-1], ContentFile(data), save=False)
        copy.save()
        if copy.kind == Attachment.Kind.IMAGE:
            # Its thumbnail and the copy sent to models, made now from the bytes at hand.
            attachment_versions_make(attachment=copy, data=data)
        copied += 1
    return copied


def _owned_message(*, owner: AbstractBaseUser, message_id: int) -> Message:
    """Message ``message_id`` with its conversation, if ``owner`` owns it; else
    ValidationError (the same for a missing id and another person's)."""
    message = (
        Message.objects.select_related("conversation")
        .filter(pk=message_id, conversation__owner=owner)
        .first()
    )
    if message is None:
        raise ValidationError(_("That message is not in your conversations."))
    return message


def branch_show(*, owner: AbstractBaseUser, message_id: int) -> tuple[Conversation, int]:
    """Show the branch through message ``message_id`` (one of the person's): it becomes
    the branch remembered for its conversation, down to its newest message (a question
    answered side by side stays the end). Returns (the conversation, the new leaf id).
    ValidationError when the message is not the owner's."""
    with transaction.atomic():
        message = _owned_message(owner=owner, message_id=message_id)
        conversation = message.conversation
        # Down the newest line below it (a question answered side by side stays the end).
        leaf = branch_end(conversation_id=conversation.pk, start=message_id)
        Conversation.objects.filter(pk=conversation.pk).update(current_leaf_id=leaf)
        conversation.current_leaf_id = leaf
    return conversation, leaf


def branch_delete(*, owner: AbstractBaseUser, message_id: int) -> tuple[Conversation, int]:
    """Delete message ``message_id`` and everything below it (its branch). The branch
    shown moves to a remaining sibling, else to the parent. Refused (ValidationError)
    while a reply in that branch is being written, or for another person's message.
    Returns (the conversation, how many messages were deleted)."""
    with transaction.atomic():
        message = _owned_message(owner=owner, message_id=message_id)
        conversation = Conversation.objects.select_for_update().get(pk=message.conversation_id)
        tree = conversation_tree(conversation_id=conversation.pk)
        doomed = tree.subtree(message_id)
        if Message.objects.filter(pk__in=doomed, status=Message.Status.STREAMING).exists():
            raise ValidationError(
                _("A reply in this branch is being written: stop it before deleting the branch.")
            )
        shown = tree.thread(conversation.current_leaf_id)
        siblings = [i for i in tree.children[tree.parent[message_id]] if i != message_id]
        if message_id not in shown:
            leaf = conversation.current_leaf_id
        elif siblings:
            leaf = tree.leaf_of(siblings[-1])
        else:
            leaf = tree.parent[message_id]
        # Delete from the leaves up: one query; the cascade handles attachments.
        Message.objects.filter(pk__in=doomed).delete()
        conversation.current_leaf_id = leaf
        conversation.updated_at = timezone.now()
        conversation.save(update_fields=["current_leaf", "updated_at"])
    return conversation, len(doomed)


def conversation_fork(*, owner: AbstractBaseUser, message_id: int) -> Conversation:
    """A new conversation of ``owner`` holding a copy of the branch from the root down to
    message ``message_id`` (with the settings, attachments and usage); the original is
    untouched. A reply still being written cannot be forked (ValidationError)."""
    with transaction.atomic():
        message = _owned_message(owner=owner, message_id=message_id)
        if message.status == Message.Status.STREAMING:
            raise ValidationError(_("Wait for the reply to finish before forking it."))
        source = message.conversation
        tree = conversation_tree(conversation_id=source.pk)
        path = tree.path_to(message_id)
        rows = {m.pk: m for m in Message.objects.filter(pk__in=path)}
        title = storable_text(_("%(title)s (fork)") % {"title": source.title or _("New chat")})[
            :200
        ]
        fork = Conversation.objects.create(
            owner=owner,
            title=title,
            provider=source.provider,
            model=source.model,
            system_prompt=source.system_prompt,
            temperature=source.temperature,
            max_tokens=source.max_tokens,
            reasoning_effort=source.reasoning_effort,
            thinking_budget=source.thinking_budget,
        )
        parent_id = None
        for original_id in path:
            original = rows[original_id]
            copy = Message.objects.create(
                conversation=fork,
                parent_id=parent_id,
                **{name: getattr(original, name) for name in _MESSAGE_FIELDS},
            )
            attachments_copy(source_message_id=original_id, target_message_id=copy.pk)
            parent_id = copy.pk
        fork.current_leaf_id = parent_id
        fork.save(update_fields=["current_leaf"])
    return fork


def messages_chain(*, conversation_ids: list[int]) -> int:
    """Link the messages of these conversations into one branch each, in time order
    (each message's parent: the one before it). For rows written in bulk without
    parents (imports, seeding benchmarks and tests). Returns how many were linked."""
    batch: list[Message] = []
    leaves: dict[int, int] = {}
    previous: tuple[int, int] | None = None  # (conversation id, message id)
    rows = (
        Message.objects.filter(conversation_id__in=conversation_ids)
        .order_by("conversation_id", "created_at", "id")
        .values_list("id", "conversation_id")
    )
    linked = 0
    for message_id, conversation_id in rows.iterator(chunk_size=5000):
        if previous is not None and previous[0] == conversation_id:
            batch.append(Message(id=message_id, parent_id=previous[1]))
        previous = (conversation_id, message_id)
        leaves[conversation_id] = message_id
        if len(batch) >= 2000:
            linked += len(batch)
            Message.objects.bulk_update(batch, ["parent"])
            batch = []
    if batch:
        linked += len(batch)
        Message.objects.bulk_update(batch, ["parent"])
    for conversation_id, leaf_id in leaves.items():
        Conversation.objects.filter(pk=conversation_id).update(current_leaf_id=leaf_id)
    return linked
