"""Folders (projects), pins and the archive.

A folder belongs to one person and holds some of their conversations. It may carry a
system prompt and a model: a new chat started in the folder begins with them (the model
only while the person may use it: ``folder_chat_defaults``). Deleting a folder keeps its
conversations, outside any folder. A pinned conversation leads the conversation list; an
archived one leaves it for the "Archived" view until it is unarchived. Callers have
checked the owner (``chat.selectors``); functions that take an ``owner`` scope their
writes to it.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from access.services import model_access_for

from ..dbtext import storable_text
from ..models import Conversation, Folder
from ..providers import PROVIDER_REGISTRY, get_provider
from .conversations import _check_model
from .menu import ProviderChoice

FOLDER_NAME_MAX_CHARS = 100
# A folder menu longer than this helps nobody; it also bounds what one account can store.
FOLDERS_PER_PERSON = 200


def folder_name_clean(name: str) -> str:
    """A folder name as typed, tidied: spaces collapsed, at most
    ``FOLDER_NAME_MAX_CHARS`` characters. ValidationError when nothing is left."""
    name = " ".join(storable_text(name or "").split())
    if not name:
        raise ValidationError(_("The folder name cannot be empty."))
    if len(name) > FOLDER_NAME_MAX_CHARS:
        raise ValidationError(
            _("A folder name has at most %(limit)d characters (this one has %(length)d).")
            % {"limit": FOLDER_NAME_MAX_CHARS, "length": len(name)}
        )
    return name


def _check_name_free(*, owner: AbstractBaseUser, name: str, folder: Folder | None) -> None:
    others = Folder.objects.filter(owner=owner, name_key=Folder.key_for(name))
    if folder is not None:
        others = others.exclude(pk=folder.pk)
    if others.exists():
        raise ValidationError(_("You already have a folder named “%(name)s”.") % {"name": name})


def _check_default_model(*, owner: AbstractBaseUser, provider: str, model: str) -> None:
    """A folder's model: both blank (no default), or a model of a registered provider
    that the person's access rules allow. ValidationError with the reason otherwise."""
    if not provider and not model:
        return
    if not provider or not model:
        raise ValidationError(_("Choose a model from the menu, or no default model."))
    if provider not in PROVIDER_REGISTRY:
        raise ValidationError(_("Unknown provider “%(name)s”.") % {"name": provider})
    _check_model(get_provider(provider), model)
    reason = model_access_for(user=owner).reason(provider, model)
    if reason:
        raise ValidationError(reason)


def folder_create(
    *,
    owner: AbstractBaseUser,
    name: str,
    system_prompt: str = "",
    provider: str = "",
    model: str = "",
) -> Folder:
    """A new folder of ``owner``'s named ``name`` (unique among theirs, letter case
    ignored), with the system prompt and model (``provider`` and ``model`` both blank:
    none) new chats in it start with. Raises ValidationError with the reason: an empty or
    taken name, a model unknown or not allowed, too many folders."""
    name = folder_name_clean(name)
    _check_default_model(owner=owner, provider=provider, model=model)
    if Folder.objects.filter(owner=owner).count() >= FOLDERS_PER_PERSON:
        raise ValidationError(
            _("You have %(limit)d folders, the most there can be. Delete one first.")
            % {"limit": FOLDERS_PER_PERSON}
        )
    _check_name_free(owner=owner, name=name, folder=None)
    try:
        with transaction.atomic():
            return Folder.objects.create(
                owner=owner,
                name=name,
                system_prompt=storable_text(system_prompt or ""),
                provider=provider,
                model=model,
            )
    except IntegrityError:  # the same name made a moment ago, in another tab
        raise ValidationError(
            _("You already have a folder named “%(name)s”.") % {"name": name}
        ) from None


def folder_update(
    *, folder: Folder, name: str, system_prompt: str, provider: str, model: str
) -> Folder:
    """Rename ``folder`` and set what new chats in it start with (see ``folder_create``;
    the same errors). Conversations already in it keep their own settings."""
    name = folder_name_clean(name)
    _check_default_model(owner=folder.owner, provider=provider, model=model)
    _check_name_free(owner=folder.owner, name=name, folder=folder)
    folder.name = name
    folder.system_prompt = storable_text(system_prompt or "")
    folder.provider = provider
    folder.model = model
    try:
        with transaction.atomic():
            folder.save(update_fields=["name", "system_prompt", "provider", "model"])
    except IntegrityError:
        raise ValidationError(
            _("You already have a folder named “%(name)s”.") % {"name": name}
        ) from None
    return folder


def folder_delete(*, folder: Folder) -> int:
    """Delete ``folder``; its conversations stay, outside any folder. Returns how many
    conversations it held."""
    with transaction.atomic():
        moved = Conversation.objects.filter(folder=folder).update(folder=None)
        folder.delete()
    return moved


def conversation_move(*, conversation: Conversation, folder: Folder | None) -> Conversation:
    """Put ``conversation`` in ``folder`` (None: out of any folder). The folder must be
    the conversation owner's (ValidationError otherwise). Its settings stay as they are."""
    if folder is not None and folder.owner_id != conversation.owner_id:
        raise ValidationError(_("No such folder."))
    conversation.folder = folder
    conversation.save(update_fields=["folder"])
    return conversation


def conversation_pin(*, conversation: Conversation, pinned: bool) -> Conversation:
    """Pin ``conversation`` (it leads the list, the most recently pinned first) or unpin
    it. Pinning a pinned one keeps its place."""
    if pinned and conversation.pinned_at is None:
        conversation.pinned_at = timezone.now()
    elif not pinned:
        conversation.pinned_at = None
    conversation.save(update_fields=["pinned_at"])
    return conversation


def conversation_archive(*, conversation: Conversation, archived: bool) -> Conversation:
    """Archive ``conversation`` (it leaves the list for the "Archived" view; a pin
    stays for when it comes back) or bring it back."""
    if archived and conversation.archived_at is None:
        conversation.archived_at = timezone.now()
    elif not archived:
        conversation.archived_at = None
    conversation.save(update_fields=["archived_at"])
    return conversation


def conversation_folder_adopt(
    *, owner: AbstractBaseUser, conversation_id: int, folder: Folder
) -> None:
    """A chat just started in ``folder`` goes in it (one UPDATE, scoped to ``owner``)."""
    Conversation.objects.filter(pk=conversation_id, owner=owner).update(folder=folder)


@dataclass(frozen=True)
class FolderDefaults:
    """What a new chat in a folder starts with: ``provider`` and ``model`` ("" when the
    folder has none or the person cannot use it now), the ``system_prompt``, and a
    ``note`` for the person when the folder's model was left out (else "")."""

    provider: str
    model: str
    system_prompt: str
    note: str = ""


def folder_chat_defaults(
    *, folder: Folder, user: AbstractBaseUser, menu: list[ProviderChoice]
) -> FolderDefaults:
    """The settings a new chat in ``folder`` starts with for ``user``. ``menu`` is the
    model menu they see (``provider_menu`` filtered by their access rules): the folder's
    model is used only when it is in it, otherwise the note says why it is not (an access
    rule, or a provider or model gone) and the caller falls back to the usual default."""
    if not folder.provider or not folder.model:
        return FolderDefaults("", "", folder.system_prompt)
    usable = {choice.name: choice.models for choice in menu if choice.usable}
    if folder.model in usable.get(folder.provider, ()):
        return FolderDefaults(folder.provider, folder.model, folder.system_prompt)
    reason = model_access_for(user=user).reason(folder.provider, folder.model)
    values = {"folder": folder.name, "model": folder.model}
    if reason:
        note = _(
            "The folder “%(folder)s” starts chats on %(model)s, which you may not use: "
            "this chat starts on your usual model. %(reason)s"
        ) % {**values, "reason": reason}
    else:
        note = (
            _(
                "The folder “%(folder)s” starts chats on %(model)s, which is not available "
                "now: this chat starts on your usual model."
            )
            % values
        )
    return FolderDefaults("", "", folder.system_prompt, note)


def folder_apply_to_new_chat(
    *,
    folder: Folder,
    user: AbstractBaseUser,
    fields: dict[str, Any],
    sent: Container[str],
) -> None:
    """Complete ``fields`` (the ``reply_prepare`` arguments of a new chat's first
    message, in place) from ``folder``: its system prompt when the request sent none
    (``"system_prompt"`` not in ``sent``; one sent empty stays empty: the person cleared
    it), its model when the request named no provider and the person may use it."""
    if "system_prompt" not in sent:
        fields["system_prompt"] = folder.system_prompt
    if (
        not fields.get("provider")
        and folder.provider
        and folder.model
        and model_access_for(user=user).allows(folder.provider, folder.model)
    ):
        fields["provider"], fields["model"] = folder.provider, folder.model
