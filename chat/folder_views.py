"""Folders, pins and the archive (chat/services/folders.py): create, edit and delete a
folder; move a conversation into a folder or out of it; pin, unpin, archive, unarchive.

Every view takes POST only (with the CSRF token) and acts on the signed-in person's own
folders and conversations: another person's id is a 404. The page's script asks with
``fetch`` (``X-Requested-With: fetch``) and gets JSON, ``{"error": "..."}`` with status
400 for a refusal; a plain form post gets a redirect and a notice."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_POST

from . import selectors
from .models import Conversation, Folder
from .services import folders as folder_services


class FolderForm(forms.Form):
    """A folder as the folder dialog posts it. ``model_choice`` is the model menu's value
    (``provider::model``), "" for no default model."""

    name = forms.CharField(required=False, strip=False, label=gettext_lazy("Name"))
    system_prompt = forms.CharField(
        required=False, strip=False, label=gettext_lazy("Instructions for new chats")
    )
    model_choice = forms.CharField(
        required=False, max_length=300, label=gettext_lazy("Model for new chats")
    )

    def provider_and_model(self) -> tuple[str, str]:
        """(provider, model) from ``model_choice``; ("", "") for none. ValidationError
        for a value that is not ``provider::model``."""
        choice = (self.cleaned_data.get("model_choice") or "").strip()
        if not choice:
            return "", ""
        provider, sep, model = choice.partition("::")
        if not sep or not provider or not model:
            raise ValidationError(_("Choose a model from the menu, or no default model."))
        return provider, model


def _wants_json(request: HttpRequest) -> bool:
    return request.headers.get("X-Requested-With") == "fetch"


def _folder_url(folder: Folder | None) -> str:
    """The chat page with the conversation list showing ``folder`` (None: all)."""
    url = reverse("chat:index")
    return f"{url}?{urlencode({'folder': folder.pk})}" if folder is not None else url


def _refused(request: HttpRequest, error: ValidationError, back: str) -> HttpResponse:
    text = " ".join(error.messages)
    if _wants_json(request):
        return JsonResponse({"error": text}, status=400)
    flash.error(request, text)
    return redirect(back)


def _done(request: HttpRequest, data: dict[str, Any], back: str, notice: str) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(data, status=201 if data.get("created") else 200)
    flash.success(request, notice)
    return redirect(back)


def _folder_json(folder: Folder, **extra: Any) -> dict[str, Any]:
    return {"id": folder.pk, "name": folder.name, "url": _folder_url(folder), **extra}


@require_POST
@login_required
def folder_create(request: HttpRequest) -> HttpResponse:
    """Make a folder (name, instructions and model for new chats): 201 {id, name, url},
    ``url`` the chat page showing the new folder."""
    form = FolderForm(request.POST)
    form.is_valid()  # every field is optional: the service says what is wrong
    try:
        provider, model = form.provider_and_model()
        folder = folder_services.folder_create(
            owner=request.user,
            name=form.cleaned_data.get("name", ""),
            system_prompt=form.cleaned_data.get("system_prompt", ""),
            provider=provider,
            model=model,
        )
    except ValidationError as e:
        return _refused(request, e, reverse("chat:index"))
    return _done(
        request,
        _folder_json(folder, created=True),
        _folder_url(folder),
        _("Folder “%(name)s” created.") % {"name": folder.name},
    )


@require_POST
@login_required
def folder_update(request: HttpRequest, pk: int) -> HttpResponse:
    """Rename a folder and set what new chats in it start with: {id, name, url}."""
    folder = selectors.folder_get_for_user(user=request.user, pk=pk)
    form = FolderForm(request.POST)
    form.is_valid()
    try:
        provider, model = form.provider_and_model()
        folder_services.folder_update(
            folder=folder,
            name=form.cleaned_data.get("name", ""),
            system_prompt=form.cleaned_data.get("system_prompt", ""),
            provider=provider,
            model=model,
        )
    except ValidationError as e:
        return _refused(request, e, _folder_url(folder))
    return _done(request, _folder_json(folder), _folder_url(folder), _("Folder saved."))


@require_POST
@login_required
def folder_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete a folder; its conversations stay, outside any folder: {deleted, moved, url}."""
    folder = selectors.folder_get_for_user(user=request.user, pk=pk)
    name = folder.name
    moved = folder_services.folder_delete(folder=folder)
    notice = _("Folder “%(name)s” deleted. Its conversations are kept.") % {"name": name}
    return _done(
        request,
        {"deleted": True, "moved": moved, "url": _folder_url(None), "notice": notice},
        _folder_url(None),
        notice,
    )


def _conversation_json(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.pk,
        "folder_id": conversation.folder_id,
        "pinned": conversation.pinned_at is not None,
        "archived": conversation.archived_at is not None,
    }


def _conversation_url(conversation: Conversation) -> str:
    return reverse("chat:conversation", args=[conversation.pk])


@require_POST
@login_required
def conversation_move(request: HttpRequest, pk: int) -> HttpResponse:
    """Put a conversation in the folder ``folder`` (an id of the person's), or out of any
    folder (``folder`` empty): {id, folder_id, folder_name, pinned, archived}."""
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    raw = (request.POST.get("folder") or "").strip()
    folder: Folder | None = None
    if raw:
        if not raw.isdigit():
            return _refused(
                request, ValidationError(_("No such folder.")), _conversation_url(conversation)
            )
        folder = selectors.folder_get_for_user(user=request.user, pk=int(raw))
    folder_services.conversation_move(conversation=conversation, folder=folder)
    if folder is None:
        notice = _("Moved out of its folder.")
    else:
        notice = _("Moved to “%(name)s”.") % {"name": folder.name}
    data = _conversation_json(conversation)
    data["folder_name"] = folder.name if folder else ""
    data["notice"] = notice
    return _done(request, data, _conversation_url(conversation), notice)


def _flag_view(*, pin: bool | None = None, archive: bool | None = None) -> Any:
    """A view that pins, unpins, archives or unarchives the person's conversation."""

    @require_POST
    @login_required
    def view(request: HttpRequest, pk: int) -> HttpResponse:
        conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
        if pin is not None:
            folder_services.conversation_pin(conversation=conversation, pinned=pin)
            notice = _("Pinned.") if pin else _("Unpinned.")
        else:
            folder_services.conversation_archive(conversation=conversation, archived=bool(archive))
            notice = _("Archived.") if archive else _("Back from the archive.")
        data = _conversation_json(conversation)
        data["notice"] = notice
        return _done(request, data, _conversation_url(conversation), notice)

    return view


conversation_pin = _flag_view(pin=True)
conversation_pin.__doc__ = "Pin a conversation: it leads the list. {id, pinned: true, ...}"
conversation_unpin = _flag_view(pin=False)
conversation_unpin.__doc__ = "Unpin a conversation. {id, pinned: false, ...}"
conversation_archive = _flag_view(archive=True)
conversation_archive.__doc__ = "Archive a conversation: it leaves the list. {archived: true}"
conversation_unarchive = _flag_view(archive=False)
conversation_unarchive.__doc__ = "Bring a conversation back from the archive. {archived: false}"
