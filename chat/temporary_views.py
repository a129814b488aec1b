"""Temporary chats (issue 13): a chat the server never writes down.

``POST /t/reply/`` takes the whole chat so far as JSON and streams the reply as the chat
page's Server-Sent Events (``services.temporary``); ``POST /t/<run>/stop/`` stops it.
Nothing of the chat is stored: no conversation, no messages, no attachments, no Redis,
and its text is never logged. Only the usage record (tokens, cost; no text, no reply id)
is written, so budgets apply.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import OperationalError
from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from usage.budgets import budget_release

from . import ratelimit, services
from .forms import ConversationSettingsForm
from .services.replies import reply_prepare_temporary
from .services.temporary import temporary_follow, temporary_stop
from .views import _ClosingStream, _error_text, _form_error_text, _shutting_down

logger = logging.getLogger(__name__)

# The settings of the chat (as the settings dialog names them), checked by its form.
_SETTINGS = ("system_prompt", "temperature", "max_tokens", "reasoning_effort", "thinking_budget")


def _refused(message: str, status: int = 400) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def _read_body(request: HttpRequest) -> dict[str, Any] | JsonResponse:
    """The request's JSON object, or the 400 to send (never echoing what was sent)."""
    try:
        body = json.loads(request.body or b"null")
    except RequestDataTooBig:
        return _refused(_("This temporary chat is too large to send. Start a new temporary chat."))
    except (ValueError, UnicodeDecodeError):
        return _refused(_("The request is not valid JSON."))
    if not isinstance(body, dict):
        return _refused(_("The request must be a JSON object with provider, model and messages."))
    for name in ("provider", "model"):
        value = body.get(name) or ""
        if not isinstance(value, str) or len(value) > 200:
            return _refused(_("The provider and the model are named by text."))
    return body


@require_POST
async def temporary_reply(request: HttpRequest) -> HttpResponseBase:
    """A reply in a temporary chat. The JSON body: ``provider``, ``model``, ``messages``
    (``[{"role": "user"|"assistant", "content": str}]``, oldest first, alternating, ending
    with the question) and the chat's settings (``system_prompt``, ``temperature``,
    ``max_tokens``, ``reasoning_effort``, ``thinking_budget``; empty or missing: the
    model's default). Answers with the chat page's SSE (start, delta/reasoning..., done
    or error; the start's ``message_id`` is the negative run number ``/t/<run>/stop/``
    takes), or 400/403/429/503 with ``{"error": sentence}`` when refused (nothing held).
    Signed-in people only (others are sent to sign in)."""
    hub = services.get_hub()
    hub.start()

    def prepare() -> services.PreparedReply | HttpResponseBase:
        try:
            return checked_prepare()
        finally:
            services.connection_release()  # before streaming: a reply may take minutes

    def checked_prepare() -> services.PreparedReply | HttpResponseBase:
        user = request.user
        if not user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        body = _read_body(request)
        if isinstance(body, JsonResponse):
            return body
        if not isinstance(body.get("system_prompt") or "", str):
            return _refused(_("The system prompt must be text."))
        form = ConversationSettingsForm(
            {name: body.get(name) for name in _SETTINGS if body.get(name) is not None}
        )
        if not form.is_valid():
            return _refused(_form_error_text(form))
        if not hub.accepting:
            return _shutting_down()
        verdict = ratelimit.hit(
            "reply",
            str(user.pk),
            limit=settings.CHAT_RATE_LIMIT_MESSAGES,
            window=settings.CHAT_RATE_LIMIT_WINDOW,
        )
        if not verdict.allowed:
            message = _("You are sending messages too fast. Try again in %(seconds)d seconds.") % {
                "seconds": verdict.retry_after
            }
            limited = _refused(message, 429)
            limited["Retry-After"] = str(verdict.retry_after)
            return limited
        options = {name: form.cleaned_data.get(name) for name in _SETTINGS}
        options["system_prompt"] = options["system_prompt"] or ""
        return reply_prepare_temporary(
            owner=user,
            provider=body.get("provider") or "",
            model=body.get("model") or "",
            messages=body.get("messages"),
            show_detail=bool(user.is_staff),
            **options,
        )

    try:
        prepared = await sync_to_async(prepare, thread_sensitive=False)()
    except ValidationError as e:
        return _refused(_error_text(e))
    except OperationalError:
        logger.warning("temporary reply: database busy", exc_info=True)
        busy = _refused(_("The database is busy. Try again in a moment."), 503)
        busy["Retry-After"] = "2"
        return busy
    if isinstance(prepared, HttpResponseBase):
        return prepared
    try:
        run = hub.start_run(prepared)
    except services.ShuttingDown:
        await services.db_step(budget_release)(reservation_id=prepared.budget_reservation_id)
        return _shutting_down()
    stream = temporary_follow(run, show_detail=prepared.show_detail)
    response = StreamingHttpResponse(_ClosingStream(stream), content_type="text/event-stream")
    response["Cache-Control"] = "no-store, no-transform"
    response["X-Accel-Buffering"] = "no"
    return response


@require_POST
async def temporary_reply_stop(request: HttpRequest, run: str) -> HttpResponseBase:
    """Stop temporary reply ``run`` (its negative number, from the ``start`` event): 200
    ``{"stopping": bool}``; 404 when no such reply of this person runs in this worker (the
    page then closes its stream, which stops it too). Signed-in people only."""
    user = await request.auser()
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    stopping = await temporary_stop(run_number=int(run), user_id=user.pk)
    if stopping is None:
        return JsonResponse({"stopping": False}, status=404)
    return JsonResponse({"stopping": stopping})
