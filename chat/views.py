"""Views stay thin: parse input with a form, check the owner through selectors, call a
service, render or stream. No SDK is imported here."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import quote, urlencode

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.contrib import messages as flash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.db import DatabaseError, OperationalError, connection
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from access.services import model_access_for
from siteconfig.models import SiteConfiguration
from usage.budgets import budget_release

from . import ratelimit, selectors, services
from .forms import (
    ConversationSettingsForm,
    NewConversationForm,
    RenameForm,
    ReplyForm,
)
from .models import Conversation, Folder, Message
from .providers import list_providers
from .services.folders import conversation_folder_adopt as folder_adopt
from .services.folders import folder_apply_to_new_chat, folder_chat_defaults
from .snippets import snippet
from .templatetags.chat_models import provider_label

SIDEBAR_LIMIT = 100
ARCHIVED = "archived"  # ?folder=archived: the conversation list shows the archive
THREAD_PAGE = 50


def _optional_id(value: str | None) -> int | None:
    """A positive id from a query parameter; anything else is a 404, not a crash."""
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) <= 0:
        raise Http404("Invalid id")
    return int(value)


logger = logging.getLogger(__name__)


def _error_text(error: ValidationError | Any) -> str:
    if isinstance(error, ValidationError):
        return " ".join(error.messages)
    return " ".join(str(m) for errs in error.values() for m in errs)


def _form_error_text(form: Any) -> str:
    """A form's errors as one line that names each labelled field ("Temperature: Ensure
    this value is less than or equal to 2.0."). A field without a label of its own (the
    message, the model...) is not named: its name is code, in English, and its errors
    say what they are about ("The message is too long...")."""
    parts = []
    for name, errors in form.errors.items():
        text = " ".join(str(m) for m in errors)
        field = form.fields.get(name)
        parts.append(f"{field.label}: {text}" if field is not None and field.label else text)
    return " ".join(parts)


def _sidebar_filter(request: HttpRequest, folders: list[Folder]) -> tuple[Folder | None, bool]:
    """The list's filter from ``?folder=``: (the folder, False) for one of the person's
    folder ids, (None, True) for "archived", (None, False) for all. Another id: 404."""
    raw = request.GET.get("folder", "")
    if raw == ARCHIVED:
        return None, True
    folder_id = _optional_id(raw)
    if folder_id is None:
        return None, False
    for folder in folders:
        if folder.pk == folder_id:
            return folder, False
    # Not in the cached list: made a moment ago, or not the person's (404).
    return selectors.folder_get_for_user(user=request.user, pk=folder_id), False


def _chat_context(request: HttpRequest, conversation: Conversation | None) -> dict[str, Any]:
    query = request.GET.get("q", "").strip()[:200]
    older_than = _optional_id(request.GET.get("older_than"))
    # Folders, pins, the archive: the folder filter (the folder list is cached), then
    # the list, led by its "Pinned" group on the first page (not in a search, nor in the
    # archive). One query, as without folders.
    folders = selectors.folder_list_for_user(user=request.user)
    current_folder, archived_view = _sidebar_filter(request, folders)
    folder_id = current_folder.pk if current_folder else None
    folder_param = ARCHIVED if archived_view else str(folder_id or "")
    grouped = not query and not archived_view
    pinned: list[Conversation] = []
    if grouped and older_than is None:
        pinned, conversations = selectors.sidebar_first_page_for_user(
            user=request.user, folder_id=folder_id, limit=SIDEBAR_LIMIT
        )
    else:
        conversations = list(
            selectors.conversation_list_for_user(
                user=request.user,
                query=query,
                older_than=older_than,
                folder_id=folder_id,
                archived=archived_view,
                pinned=False if grouped else None,
            )[: SIDEBAR_LIMIT + 1]
        )
    more = len(conversations) > SIDEBAR_LIMIT
    conversations = conversations[:SIDEBAR_LIMIT]
    older_params = ""
    if more:
        older_params = urlencode(
            {
                k: v
                for k, v in (
                    ("q", query),
                    ("folder", folder_param),
                    ("older_than", conversations[-1].pk),
                )
                if v
            }
        )
    menu = async_to_sync(services.provider_menu)(for_staff=request.user.is_staff)
    # Only the models this person's groups may use (access rules, in the admin).
    access = model_access_for(user=request.user)
    menu = access.filter_menu(menu)
    # Nothing to choose: say why (the access rules, or no provider set up at all).
    no_model_reason = ""
    if not any(choice.usable and choice.models for choice in menu):
        no_model_reason = (
            _(
                "Your groups may not use any model on this server. Ask an administrator "
                "to allow one."
            )
            if access.restricted
            else _("No model is available on this server yet. Ask an administrator.")
        )
    folder_note = model_note = ""
    if conversation:
        current_provider, current_model = conversation.provider, conversation.model
        if not no_model_reason and not _in_menu(menu, current_provider, current_model):
            # Its model left the menu (an access rule, a key removed): say so, and which
            # model the menu now holds for the next message.
            current_provider, current_model = _replacement_model(menu)
            model_note = _model_gone_note(
                conversation,
                reason=access.reason(conversation.provider, conversation.model),
                next_label=_menu_label(menu, current_provider, current_model),
            )
    else:
        current_provider = current_model = ""
        if current_folder is not None:
            # A new chat in a folder starts on its model, when the person may use it.
            defaults = folder_chat_defaults(folder=current_folder, user=request.user, menu=menu)
            current_provider, current_model = defaults.provider, defaults.model
            folder_note = defaults.note
        if not current_model:
            current_provider, current_model = services.model_default_for(
                user=request.user, menu=menu
            )
    if query:
        _attach_search_hits(request, conversations, query)
    page: selectors.ThreadPage | None = None
    before = _optional_id(request.GET.get("before"))
    leaf = _optional_id(request.GET.get("leaf"))
    hit = _optional_id(request.GET.get("hit"))
    viewing_earlier = before is not None
    if conversation and hit is not None and before is None:
        found = selectors.message_page_through(
            conversation=conversation, message_id=hit, limit=THREAD_PAGE
        )
        if found is None:
            hit = None
        else:
            page, viewing_earlier = found
    if conversation and page is None:
        try:
            page = selectors.thread_page(
                conversation=conversation, leaf=leaf, before=before, limit=THREAD_PAGE
            )
        except Http404:
            if leaf is None:
                raise
            # A link to a branch since deleted: the branch last shown instead.
            page = selectors.thread_page(conversation=conversation, limit=THREAD_PAGE)
            viewing_earlier = False
    thread = page.messages if page else []
    earlier_id = page.earlier_id if page else None
    settings_form = ConversationSettingsForm.for_conversation(conversation, menu)
    if conversation is None and current_folder is not None:
        # The settings of a new chat in a folder start from the folder's.
        settings_form.initial["system_prompt"] = current_folder.system_prompt
    return {
        "conversation": conversation,
        "conversations": conversations,
        "pinned_conversations": pinned,
        "folders": folders,
        "current_folder": current_folder,
        "archived_view": archived_view,
        "folder_param": folder_param,
        "folder_note": folder_note,
        "model_note": model_note,
        "older_conversations_query": older_params,
        "sidebar_is_older_page": older_than is not None,
        "query": query,
        "thread": thread,
        "earlier_id": earlier_id,
        "leaf_id": page.leaf_id if page else None,
        "compare": page.compare if page else [],
        "viewing_earlier": viewing_earlier,
        "search_hit": hit,
        "menu": menu,
        "no_model_reason": no_model_reason,
        "current_provider": current_provider,
        "current_model": current_model,
        "settings_form": settings_form,
        "max_message_chars": settings.CHAT_MAX_MESSAGE_CHARS,
        "attachment_max_files": settings.CHAT_ATTACHMENTS_PER_MESSAGE,
        "attachment_max_bytes": settings.CHAT_ATTACHMENT_MAX_BYTES,
    }


def _in_menu(menu: list[services.ProviderChoice], provider: str, model: str) -> bool:
    """``model`` of ``provider`` can be picked in ``menu``."""
    return any(c.name == provider and c.usable and model in c.models for c in menu)


def _replacement_model(menu: list[services.ProviderChoice]) -> tuple[str, str]:
    """(provider, model) the menu holds for a conversation whose own model left it: the
    admin's default (Site configuration, then CHAT_DEFAULT_PROVIDER / CHAT_DEFAULT_MODEL;
    its provider's first model when that model is not in ``menu``), else the menu's first
    model; ("", "") for an empty menu. No query (the site configuration is cached):
    unlike ``model_default_for`` it does not look up the model used last."""
    usable = {c.name: c.models for c in menu if c.usable and c.models}
    config = SiteConfiguration.current()
    for provider, model in (
        (config.default_provider, config.default_model),
        (settings.CHAT_DEFAULT_PROVIDER, settings.CHAT_DEFAULT_MODEL),
    ):
        if provider in usable:  # as a new chat: the provider's first model if need be
            return provider, model if model in usable[provider] else usable[provider][0]
    first = next(iter(usable), "")
    return (first, usable[first][0]) if first else ("", "")


def _menu_label(menu: list[services.ProviderChoice], provider: str, model: str) -> str:
    """A model as the menu and the replies name it ("OpenAI · gpt-4o"); the provider's
    label comes from the registry when the menu lacks it, the model alone when neither
    has it."""
    label = provider_label(provider, menu)
    return f"{label} · {model}" if label else model


def _model_gone_note(conversation: Conversation, *, reason: str, next_label: str) -> str:
    """The note of a conversation whose model is not in the person's menu any more:
    ``reason`` is the access rule's sentence (naming the model; "" when no rule forbids
    it: the provider or the model is gone), ``next_label`` the model the menu now holds
    for the next message."""
    if reason:
        return _(
            "You may no longer use this conversation's model: your next message will go to "
            "%(next)s unless you pick another model. %(reason)s"
        ) % {"next": next_label, "reason": reason}
    return _(
        "This conversation's model, %(model)s, is not available now: your next message "
        "will go to %(next)s unless you pick another model."
    ) % {"model": _menu_label([], conversation.provider, conversation.model), "next": next_label}


def _attach_search_hits(
    request: HttpRequest, conversations: list[Conversation], query: str
) -> None:
    """Give each listed conversation the passage that matched (``search_snippet``, with
    ``search_hit``, the message to open at) or its title split around the match
    (``title_snippet``), and the link that keeps the search while stepping through."""
    hits = selectors.search_hits_for_conversations(
        user=request.user, conversation_ids=[c.pk for c in conversations], query=query
    )
    for item in conversations:
        params = {"q": query}
        title = snippet(item.title or "", query, context=200)
        item.title_snippet = title if title.match else None
        if item.pk in hits:
            message_id, item.search_snippet = hits[item.pk]
            params["hit"] = str(message_id)
        item.search_url = reverse("chat:conversation", args=[item.pk]) + "?" + urlencode(params)


def _chat_page(request: HttpRequest, conversation: Conversation | None) -> HttpResponse:
    context = _chat_context(request, conversation)
    if request.method == "POST":
        # The composer posted as a plain form: the page's script did not run (blocked,
        # still loading, or an asset that changed under a running server). Nothing is
        # sent; the page comes back with the typed text and says why.
        context["composer_text"] = request.POST.get("content", "")
        context["composer_error"] = _(
            "Your message was not sent: the page's script did not load. Reload the page "
            "and send again (your text is kept below)."
        )
    return render(request, "chat/chat.html", context)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def index(request: HttpRequest) -> HttpResponse:
    """A new, empty chat: the conversation is created with its first message."""
    return _chat_page(request, None)


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def conversation_detail(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    if conversation.reply_unseen_at is not None and request.method == "GET":
        # Opening the conversation shows its latest reply: the sidebar mark goes.
        services.conversation_mark_seen(owner=request.user, conversation_id=pk)
        conversation.reply_unseen_at = None
    return _chat_page(request, conversation)


@require_POST
@login_required
def conversation_seen(request: HttpRequest, pk: int) -> HttpResponse:
    """The page watched a reply of this conversation finish: no "new reply" mark."""
    selectors.conversation_get_for_user(user=request.user, pk=pk)
    services.conversation_mark_seen(owner=request.user, conversation_id=pk)
    return HttpResponse(status=204)


@require_safe
@login_required
def conversation_statuses(request: HttpRequest) -> HttpResponse:
    """For the sidebar: which of ``?ids=1,2,3`` have a reply in progress or a finished
    one not seen yet, and their titles (a title written in the background appears)."""
    ids = [int(part) for part in request.GET.get("ids", "").split(",") if part.isdigit()]
    statuses = selectors.conversation_statuses_for_user(user=request.user, ids=ids)
    response = JsonResponse({"conversations": {str(k): v for k, v in statuses.items()}})
    response["Cache-Control"] = "no-store"
    return response


@require_safe
@login_required
def conversation_messages(request: HttpRequest, pk: int) -> HttpResponse:
    """A page of a branch, as an HTML fragment the page inserts: ``?before=`` earlier
    messages (above), ``?leaf=`` the branch ending there (default: the one last shown)."""
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    page = selectors.thread_page(
        conversation=conversation,
        leaf=_optional_id(request.GET.get("leaf")),
        before=_optional_id(request.GET.get("before")),
        limit=THREAD_PAGE,
    )
    return _thread_fragment(request, conversation, page)


def _thread_fragment(
    request: HttpRequest, conversation: Conversation, page: selectors.ThreadPage
) -> HttpResponse:
    response = render(
        request,
        "chat/_thread_page.html",
        {
            "conversation": conversation,
            "thread": page.messages,
            "earlier_id": page.earlier_id,
            "leaf_id": page.leaf_id,
            "compare": page.compare,
            "menu": list_providers(),
        },
    )
    response["X-Thread-Leaf"] = str(page.leaf_id or "")
    return response


@require_POST
@login_required
def message_show(request: HttpRequest, pk: int) -> HttpResponse:
    """Switch to the branch through message ``pk`` (a sibling's arrow, "Continue with
    this one" under a compared reply): remembered for the conversation; answers with the
    branch's newest page as an HTML fragment."""
    try:
        conversation, leaf = services.branch_show(owner=request.user, message_id=pk)
    except ValidationError:
        raise Http404("No such message") from None
    page = selectors.thread_page(conversation=conversation, leaf=leaf, limit=THREAD_PAGE)
    return _thread_fragment(request, conversation, page)


@require_POST
@login_required
def message_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """Delete message ``pk`` and its branch; answers with the branch now shown."""
    selectors.message_get_for_user(user=request.user, pk=pk)
    try:
        conversation, _count = services.branch_delete(owner=request.user, message_id=pk)
    except ValidationError as e:
        return JsonResponse({"error": _error_text(e)}, status=400)
    page = selectors.thread_page(conversation=conversation, limit=THREAD_PAGE)
    return _thread_fragment(request, conversation, page)


@require_POST
@login_required
def message_fork(request: HttpRequest, pk: int) -> HttpResponse:
    """A new conversation with the branch down to message ``pk``: 201 {id, url}."""
    selectors.message_get_for_user(user=request.user, pk=pk)
    try:
        fork = services.conversation_fork(owner=request.user, message_id=pk)
    except ValidationError as e:
        return JsonResponse({"error": _error_text(e)}, status=400)
    url = reverse("chat:conversation", args=[fork.pk])
    return JsonResponse({"id": fork.pk, "url": url, "title": fork.title}, status=201)


@require_POST
@login_required
def conversation_new(request: HttpRequest) -> HttpResponse:
    form = NewConversationForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"error": _form_error_text(form)}, status=400)
    fields = {"provider": form.cleaned_data["provider"], "model": form.cleaned_data["model"]}
    folder = None
    if request.POST.get("folder"):
        # In a folder (one of the person's, else 404): its system prompt and model.
        folder = selectors.folder_get_for_user(
            user=request.user, pk=_optional_id(request.POST["folder"]) or 0
        )
        folder_apply_to_new_chat(folder=folder, user=request.user, fields=fields, sent=())
    try:
        conversation = services.conversation_create(
            owner=request.user, provider=fields["provider"], model=fields["model"]
        )
    except ValidationError as e:
        return JsonResponse({"error": _error_text(e)}, status=400)
    if folder is not None:
        conversation.folder = folder
        conversation.system_prompt = fields["system_prompt"]
        conversation.save(update_fields=["folder", "system_prompt"])
    url = reverse("chat:conversation", args=[conversation.pk])
    return JsonResponse(
        {
            "id": conversation.pk,
            "url": url,
            "reply_url": reverse("chat:reply", args=[conversation.pk]),
        },
        status=201,
    )


def _wants_json(request: HttpRequest) -> bool:
    """The page's script asks with fetch() and wants JSON; a plain form post (no script)
    gets a redirect and a notice."""
    return request.headers.get("X-Requested-With") == "fetch"


@require_POST
@login_required
def conversation_rename(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    form = RenameForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(_form_error_text(form))
        services.conversation_rename(conversation=conversation, title=form.cleaned_data["title"])
    except ValidationError as e:
        if _wants_json(request):
            return JsonResponse({"error": _rename_error(form, e)}, status=400)
        flash.error(request, _rename_error(form, e))
        return redirect("chat:conversation", pk=conversation.pk)
    if _wants_json(request):
        return JsonResponse({"title": conversation.title})
    return redirect("chat:conversation", pk=conversation.pk)


def _rename_error(form: RenameForm, error: ValidationError) -> str:
    """Name the field: "This field is required." alone tells a person nothing."""
    if "title" in form.errors and not (form.data.get("title") or "").strip():
        return _("The title cannot be empty.")
    return _error_text(error)


@require_POST
@login_required
def conversation_delete(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    services.conversation_delete(conversation=conversation)
    flash.success(request, _("Conversation deleted."))
    return redirect("chat:index")


@require_POST
@login_required
def conversation_settings(request: HttpRequest, pk: int) -> HttpResponse:
    conversation = selectors.conversation_get_for_user(user=request.user, pk=pk)
    form = ConversationSettingsForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError(_form_error_text(form))
        services.conversation_update_settings(conversation=conversation, **form.cleaned_data)
    except ValidationError as e:
        if _wants_json(request):
            return JsonResponse({"error": _error_text(e)}, status=400)
        flash.error(request, _error_text(e))
        return redirect("chat:conversation", pk=conversation.pk)
    if _wants_json(request):
        return JsonResponse({"saved": True})
    flash.success(request, _("Settings saved."))
    return redirect("chat:conversation", pk=conversation.pk)


# The two reply views check the sign-in themselves, in the one worker thread that also
# prepares the reply (see _reply): login_required would read the session and the user in
# two more trips to Django's single sync thread before the first token.


@require_POST
async def reply(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Stream a reply as Server-Sent Events: start, delta/reasoning..., then done or
    error (see ``services.chat_stream``). Signed-in people only."""
    return await _reply(request, pk)


@require_POST
async def reply_new(request: HttpRequest) -> HttpResponseBase:
    """The first message of a new chat: the conversation is created with the message,
    and only when the message is accepted (a refused one leaves nothing behind)."""
    return await _reply(request, None)


async def _reply(request: HttpRequest, pk: int | None) -> HttpResponseBase:
    hub = services.get_hub()
    hub.start()

    def prepare() -> services.PreparedReply | HttpResponseBase:
        try:
            return checked_prepare()
        finally:
            # Give the connection back before streaming: a reply may take minutes.
            services.connection_release()

    new_chat_folder: list[Folder] = []  # the folder a new chat was started in

    def checked_prepare() -> services.PreparedReply | HttpResponseBase:
        user = request.user  # the session and the user are read here, in this thread
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        form = ReplyForm(request.POST)
        if not form.is_valid():
            return JsonResponse({"error": _form_error_text(form)}, status=400)
        if not hub.accepting:
            return _shutting_down()
        conversation = None
        if pk is not None:
            try:
                conversation = selectors.conversation_get_for_user(user=user, pk=pk)
            except Http404:
                return JsonResponse(
                    {
                        "error": _(
                            "This conversation no longer exists: it was deleted, perhaps in "
                            "another tab. Your message was not sent."
                        ),
                        "gone": True,
                    },
                    status=404,
                )
        folder = None
        if pk is None and request.GET.get("folder"):
            # A new chat started in a folder (the page's ?folder=): it goes in it.
            try:
                folder = selectors.folder_get_for_user(
                    user=user, pk=_optional_id(request.GET["folder"]) or 0
                )
            except Http404:
                return JsonResponse(
                    {
                        "error": _(
                            "This folder no longer exists: it was deleted, perhaps in "
                            "another tab. Your message was not sent."
                        )
                    },
                    status=404,
                )
        verdict = ratelimit.hit(
            "reply",
            str(user.pk),
            limit=settings.CHAT_RATE_LIMIT_MESSAGES,
            window=settings.CHAT_RATE_LIMIT_WINDOW,
        )
        if not verdict.allowed:
            message = ngettext(
                "You are sending messages too fast. Try again in %(seconds)d second.",
                "You are sending messages too fast. Try again in %(seconds)d seconds.",
                verdict.retry_after,
            ) % {"seconds": verdict.retry_after}
            limited = JsonResponse({"error": message}, status=429)
            limited["Retry-After"] = str(verdict.retry_after)
            return limited
        fields = dict(form.cleaned_data)
        fields["system_prompt"] = fields.get("system_prompt") or ""
        compare = request.POST.getlist("compare")
        if compare:
            pairs = [choice.partition("/")[::2] for choice in compare]
            if any(not p or not m for p, m in pairs):
                return JsonResponse(
                    {"error": _("Each model to compare is named provider/model.")}, status=400
                )
            fields["compare"] = pairs
        fields["attachment_ids"] = [
            int(value) for value in request.POST.getlist("attachments") if value.isdigit()
        ]
        if folder is not None:
            folder_apply_to_new_chat(folder=folder, user=user, fields=fields, sent=request.POST)
        prepared = services.reply_prepare(
            conversation=conversation,
            owner=user,
            show_detail=bool(user.is_staff),
            **fields,
        )
        if folder is not None and prepared.created_conversation:
            try:
                folder_adopt(owner=user, conversation_id=prepared.conversation_id, folder=folder)
                new_chat_folder.append(folder)
            except DatabaseError:  # the chat goes on, outside the folder
                logger.warning("new chat %s: not put in its folder", pk, exc_info=True)
        return prepared

    try:
        # Any worker thread, not Django's one sync thread: concurrent sends do not queue.
        prepared = await sync_to_async(prepare, thread_sensitive=False)()
    except ValidationError as e:
        return JsonResponse({"error": _error_text(e)}, status=400)
    except OperationalError:
        # SQLite locked past its timeout, or no free PostgreSQL connection: the
        # transaction rolled back, nothing was saved; the user may simply send again.
        logger.warning("reply to conversation %s: database busy", pk, exc_info=True)
        busy = JsonResponse(
            {"error": _("The database is busy. Try again in a moment.")}, status=503
        )
        busy["Retry-After"] = "2"
        return busy
    if isinstance(prepared, HttpResponseBase):
        return prepared
    try:
        run = hub.start_run(prepared)
    except services.ShuttingDown:
        # Saved a moment ago, and no run will answer it: close it as interrupted.
        await services.db_step(services.streaming_replies_close)(
            reply_ids=[p.reply_id for p in (prepared, *prepared.compared)],
            status=Message.Status.ERROR,
            error=_("The server is restarting. Send your message again in a moment."),
        )
        for held in (prepared, *prepared.compared):
            await services.db_step(budget_release)(reservation_id=held.budget_reservation_id)
        return _shutting_down()
    if prepared.compared:
        # Side by side: every run starts now; the page follows each (GET .../events/).
        runs = [run]
        try:
            runs += [hub.start_run(other) for other in prepared.compared]
        except services.ShuttingDown:
            for started in runs:
                started.stop()
            return _shutting_down()
        answer = _compare_json(prepared)
        if new_chat_folder:
            answer["url"] += "?" + urlencode({"folder": new_chat_folder[0].pk})
        return JsonResponse(answer, status=201)
    response = _event_stream(services.run_follow(run, show_detail=prepared.show_detail))
    if prepared.notes:
        # Said beside the reply (a PDF sent as its text): JSON, percent-encoded for HTTP.
        response["X-Chat-Notes"] = quote(json.dumps(prepared.notes))
    if prepared.created_conversation:
        response["X-Conversation-Id"] = str(prepared.conversation_id)
        response["X-Conversation-Url"] = reverse(
            "chat:conversation", args=[prepared.conversation_id]
        ) + ("?" + urlencode({"folder": new_chat_folder[0].pk}) if new_chat_folder else "")
        response["X-Reply-Url"] = reverse("chat:reply", args=[prepared.conversation_id])
    return response


def _compare_json(prepared: services.PreparedReply) -> dict[str, Any]:
    """The answer to a compare request: the conversation, the question and its replies
    (each followed at its ``events_url``)."""
    return {
        "conversation_id": prepared.conversation_id,
        "url": reverse("chat:conversation", args=[prepared.conversation_id]),
        "reply_url": reverse("chat:reply", args=[prepared.conversation_id]),
        "created": prepared.created_conversation,
        "title": prepared.created_conversation_title,
        "user_message_id": prepared.user_message_id,
        "notes": prepared.notes,
        "replies": [
            {
                "id": p.reply_id,
                "provider": p.provider,
                "model": p.model,
                "events_url": reverse("chat:events", args=[p.reply_id]),
            }
            for p in (prepared, *prepared.compared)
        ],
    }


def _shutting_down() -> JsonResponse:
    response = JsonResponse(
        {"error": _("The server is restarting. Send your message again in a moment.")},
        status=503,
    )
    response["Retry-After"] = "5"
    return response


def _event_stream(stream: AsyncGenerator[bytes, None]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(_ClosingStream(stream), content_type="text/event-stream")
    response["Cache-Control"] = "no-cache, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response


@require_safe
@login_required
async def reply_events(request: HttpRequest, pk: int) -> HttpResponseBase:
    """Follow a reply as Server-Sent Events, wherever it runs: after a reload, from
    another tab, after a dropped connection. ``Last-Event-ID`` (or ``?after=N``) resumes
    after event N; none (or 0) starts with a ``snapshot`` of the text so far. See
    ``services.chat_stream``. The person's own replies only (404 otherwise)."""
    user = await request.auser()
    reply = await sync_to_async(selectors.message_get_for_user)(user=user, pk=pk)
    if reply.role != Message.Role.ASSISTANT:
        raise Http404("No such reply")
    raw_after = request.headers.get("Last-Event-ID") or request.GET.get("after") or "0"
    if not raw_after.isdigit() or len(raw_after) > 12:
        return JsonResponse({"error": _("The event id must be a whole number.")}, status=400)
    after = int(raw_after)  # 0: from the start, with a snapshot
    return _event_stream(
        services.reply_follow(reply=reply, after=after, show_detail=bool(user.is_staff))
    )


class _ClosingStream:
    """The reply's SSE stream, closed when Django closes the response.

    On a client disconnect Django cancels the task sending the response. When that
    lands while the server is writing a chunk (not inside the generator), nothing else
    closes the generator until the garbage collector finds it, and it would stay among
    the run's followers. Django calls ``close()`` (from a worker thread) once the
    response is done; closing a finished generator is a no-op. The run itself goes on.
    """

    _closing: set[asyncio.Task[None]] = set()  # strong references until they finish

    def __init__(self, stream: AsyncGenerator[bytes, None]) -> None:
        self._stream = stream
        self._loop = asyncio.get_running_loop()

    def __aiter__(self) -> _ClosingStream:
        return self

    async def __anext__(self) -> bytes:
        return await self._stream.__anext__()

    def close(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed
            self._loop.call_soon_threadsafe(self._start_closing)

    def _start_closing(self) -> None:
        task = self._loop.create_task(self._aclose())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _aclose(self) -> None:
        with contextlib.suppress(RuntimeError):  # someone else is closing it right now
            await self._stream.aclose()


def _message_json(message: Message, *, staff: bool = False) -> dict[str, Any]:
    data = {
        "id": message.pk,
        "status": message.status,
        "content": message.content,
        "html": message.content_html,
        "reasoning": message.reasoning,
        "finish_reason": message.finish_reason,
        "notice": message.notice,
        "trimmed": message.context_trimmed or 0,
        "trimmed_note": message.trimmed_note,
        "can_continue": message.can_continue,
        "error": message.error,
        "provider": message.provider,
        "model": message.model,
        "input_tokens": message.input_tokens,
        "output_tokens": message.output_tokens,
        "reasoning_tokens": message.reasoning_tokens,
        "reasoning_ms": message.reasoning_ms,
    }
    if staff and message.error_detail:
        data["error_detail"] = message.error_detail
    return data


@require_safe
@login_required
def message_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A reply's current state (the page polls replies still streaming after a reload)."""
    message = selectors.message_get_for_user(user=request.user, pk=pk)
    return JsonResponse(_message_json(message, staff=request.user.is_staff))


@require_POST
@login_required
async def message_stop(request: HttpRequest, pk: int) -> HttpResponse:
    user = await request.auser()
    message = await sync_to_async(selectors.message_get_for_user)(user=user, pk=pk)
    stopped = await services.reply_stop(reply=message)
    return JsonResponse({"stopping": stopped})


@require_safe
def health(request: HttpRequest) -> HttpResponse:
    """For uptime monitors and load balancers: 200 when the database (and Redis, when
    ``REDIS_URL`` is set) answer, 503 otherwise. GET or HEAD, no sign-in; the body names
    only which part failed, never an address or a password."""
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
        checks["database"] = "ok"
    except Exception:
        logger.warning("health: the database does not answer", exc_info=True)
        checks["database"] = "unavailable"
    if settings.REDIS_URL:
        try:
            from django.core.cache import cache

            cache.set("chat:health", "1", 5)
            checks["redis"] = "ok" if cache.get("chat:health") == "1" else "unavailable"
        except Exception:
            logger.warning("health: Redis does not answer", exc_info=True)
            checks["redis"] = "unavailable"
    healthy = all(value == "ok" for value in checks.values())
    response = JsonResponse({"status": "ok" if healthy else "unavailable", **checks})
    response.status_code = 200 if healthy else 503
    response["Cache-Control"] = "no-store"
    return response
