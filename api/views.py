"""The OpenAI-compatible API: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Another front door to the reply run (DESIGN.md): a request is checked, becomes a
``PreparedReply`` that is not stored (no conversation, no message rows), runs through
the hub like a chat reply, and its run events are written in OpenAI's wire format
(``api/wire.py``). Models are named ``provider/model`` (``openai/gpt-4o``,
``local/smollm2-135m-instruct``). Every request needs a personal API key
(``Authorization: Bearer cai_...``, made on the account's keys page).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponseBase, JsonResponse, StreamingHttpResponse
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_exempt

from access.services import amodel_access_for, fallback_chains, model_access_for
from accounts.services import api_key_authenticate
from chat import services
from chat.providers import (
    PROVIDER_REGISTRY,
    ChatOptions,
    ProviderError,
    ReasoningDelta,
    TextDelta,
    get_provider,
)
from chat.providers.messages import normalize_messages
from chat.services.conversations import _check_model
from chat.services.fallback import fallback_chain_for, fallback_hops
from chat.services.replies import _usable_model, history_tokens, unstored_run_number
from chat.services.runs import RunFailed, RunFallback, RunFinished, RunStopped
from usage.budgets import BudgetExceeded, budget_release, budget_reserve

from .wire import ChunkEncoder, completion_body, error_body, finish_reason

logger = logging.getLogger(__name__)

# HTTP statuses for a reply that failed before its first token, by ProviderError kind.
_FAILURE_STATUS = {
    "bad_request": 400,
    "authentication": 502,
    "permission": 502,
    "not_found": 404,
    "rate_limited": 429,
    "unavailable": 503,
    "timeout": 504,
}


def _error(status: int, message: str, **fields: Any) -> JsonResponse:
    return JsonResponse(error_body(message, **fields), status=status)


def _bearer(request: HttpRequest) -> str | JsonResponse:
    """The raw key of the request's ``Authorization: Bearer`` header, or the 401 response
    to send (OpenAI's shape) when there is none."""
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return _error(
            401,
            gettext(
                "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'; "
                "make one on your account's API keys page."
            ),
        )
    return raw.strip()


def _invalid_key() -> JsonResponse:
    return _error(
        401,
        gettext("Incorrect, revoked or expired API key provided."),
        code="invalid_api_key",
    )


async def _authenticate(request: HttpRequest) -> Any:
    """The ``ApiKey`` of the request's ``Authorization: Bearer`` header, or the 401
    response to send (OpenAI's shape). Reads the database every time: a revoked key stops
    at once, on every worker."""
    raw = _bearer(request)
    if isinstance(raw, HttpResponseBase):
        return raw

    def check() -> Any:
        try:
            return api_key_authenticate(raw)
        finally:
            services.connection_release()

    key = await sync_to_async(check, thread_sensitive=False)()
    return _invalid_key() if key is None else key


@csrf_exempt
async def models_list(request: HttpRequest) -> HttpResponseBase:
    """Every model the key's owner may use, as OpenAI's model list (``provider/model``)."""
    if request.method != "GET":
        return _error(405, gettext("Use GET for /v1/models."))
    key = await _authenticate(request)
    if isinstance(key, HttpResponseBase):
        return key
    menu = await services.provider_menu(for_staff=False)
    menu = (await amodel_access_for(user=key.user)).filter_menu(menu)
    data = [
        {"id": f"{choice.name}/{model}", "object": "model", "created": 0, "owned_by": choice.name}
        for choice in menu
        if choice.usable
        for model in choice.models
    ]
    return JsonResponse({"object": "list", "data": data})


class _Refused(Exception):
    def __init__(self, response: JsonResponse) -> None:
        self.response = response


def _options(body: dict[str, Any]) -> ChatOptions:
    """The ``ChatOptions`` of a Chat Completions request body: ``temperature``,
    ``max_completion_tokens`` (or ``max_tokens``), ``reasoning_effort`` and ``stop``
    (OpenAI's shape: a string or a list of up to 4 strings; null, "" and [] mean none;
    a model that refuses stop sequences is sent none: ``unsupported_options``).
    Raises _Refused with a 400 ``invalid_request_error`` (``param`` "stop" for a bad
    ``stop``) for a bad value, ``n`` > 1 or tools."""
    for field in ("n",):
        if body.get(field) not in (None, 1):
            message = gettext("Only %(field)s=1 is supported.") % {"field": field}
            raise _Refused(_error(400, message, param=field))
    if body.get("tools") or body.get("functions"):
        raise _Refused(
            _error(400, gettext("Tools are not supported by this server yet."), param="tools")
        )
    stop = body.get("stop")
    try:
        stop_sequences = ChatOptions(stop=stop).stop if stop not in (None, "") else ()
    except ProviderError as e:
        raise _Refused(_error(400, e.message, param="stop")) from e
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    try:
        return ChatOptions(
            temperature=body.get("temperature"),
            max_tokens=max_tokens,
            reasoning_effort=body.get("reasoning_effort"),
            stop=stop_sequences,
        )
    except ProviderError as e:
        # Name the field at fault, as OpenAI does (``param``): each is checked alone.
        param = None
        for name, value in (
            ("temperature", {"temperature": body.get("temperature")}),
            (
                "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens",
                {"max_tokens": max_tokens},
            ),
            ("reasoning_effort", {"reasoning_effort": body.get("reasoning_effort")}),
        ):
            try:
                ChatOptions(**value)
            except ProviderError:
                param = name
                break
        raise _Refused(_error(400, e.message, param=param)) from e


def _prepare(
    body: dict[str, Any], key: Any, access: Any, chains: dict[str, list[str]]
) -> services.PreparedReply:
    """The not-stored reply a request asks for, checked, with the admin's fallback
    chain for its model (``chains``: ``access.services.fallback_chains``). Raises
    _Refused."""
    name = body.get("model")
    if not isinstance(name, str) or "/" not in name:
        raise _Refused(
            _error(
                400,
                gettext(
                    "model must be named provider/model, for example openai/gpt-4o-mini; "
                    "GET /v1/models lists them."
                ),
                param="model",
            )
        )
    provider_name, _, model = name.partition("/")
    missing = _error(
        404,
        gettext("The model '%(name)s' does not exist or you do not have access to it.")
        % {"name": name},
        code="model_not_found",
        param="model",
    )
    if provider_name not in PROVIDER_REGISTRY or not model:
        raise _Refused(missing)
    provider = get_provider(provider_name)
    status = provider.status()
    if not status.usable:
        raise _Refused(missing)
    try:
        _check_model(provider, model)
    except ValidationError:
        raise _Refused(missing) from None
    reason = access.reason(provider_name, model)
    if reason:
        raise _Refused(
            _error(403, reason, type_="permission_error", code="model_not_allowed", param="model")
        )
    try:
        messages = normalize_messages(body.get("messages") or [])
    except ProviderError as e:
        raise _Refused(_error(400, e.message, param="messages")) from e
    options = _options(body)
    return services.PreparedReply(
        conversation_id=0,
        user_message_id=0,
        reply_id=unstored_run_number(),  # API runs are not stored: a negative number
        provider=provider_name,
        model=model,
        options=options,
        history=messages,
        label=provider.label,
        store=False,
        user_id=key.user_id,
        api_key_id=key.pk,
        fallbacks=fallback_hops(
            fallback_chain_for(provider=provider_name, model=model, chains=chains),
            access=access,
            usable=lambda name, model: _usable_model(name, model, new_chat=False)[0],
        )
        if chains
        else (),
    )


@csrf_exempt
async def chat_completions(request: HttpRequest) -> HttpResponseBase:
    """A chat completion in OpenAI's format, whole or streamed (``stream``), with usage
    (in the last chunk when ``stream_options.include_usage``). A failure before the
    first token is an OpenAI-shaped error with its HTTP status (429, 503, 504...); after
    it, an ``error`` event ends the stream. A client that goes away stops the run (the
    upstream request is cancelled)."""
    if request.method != "POST":
        return _error(405, gettext("Use POST for /v1/chat/completions."))
    raw = _bearer(request)
    if isinstance(raw, HttpResponseBase):
        return raw
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return _error(400, gettext("We could not parse the JSON body of your request."))
    if not isinstance(body, dict):
        return _error(400, gettext("The request body must be a JSON object."))

    def admit() -> services.PreparedReply | HttpResponseBase:
        # Everything before the run in one trip to a pool thread: the key, the access
        # rules, the checks and the budget hold (each trip waits to be scheduled).
        try:
            key = api_key_authenticate(raw)
            if key is None:
                return _invalid_key()
            access = model_access_for(user=key.user)
            try:
                prepared = _prepare(body, key, access, fallback_chains())
            except _Refused as refused:
                return refused.response
            return _budget_hold(prepared, key) or prepared
        finally:
            services.connection_release()

    prepared = await sync_to_async(admit, thread_sensitive=False)()
    if isinstance(prepared, HttpResponseBase):
        return prepared
    hub = services.get_hub()
    try:
        run = hub.start_run(prepared)
    except services.ShuttingDown:
        await services.db_step(budget_release)(reservation_id=prepared.budget_reservation_id)
        return _error(
            503,
            gettext("The server is restarting. Try again in a moment."),
            type_="server_error",
        )
    completion_id = f"chatcmpl-{uuid.uuid4().hex}"
    # Wait for the first piece (or the end): a failure before it is a plain HTTP error.
    # A fallback before it changes the model that answers (named in the response).
    events = run.events
    while not run.ended and not any(type(e) is not RunFallback for e in events[1:]):
        await run.wait(len(events))
    first = next((e for e in events[1:] if type(e) is not RunFallback), None)
    if isinstance(first, RunFailed):
        return _failure(first)
    name = f"{run.provider}/{run.model}"
    if not body.get("stream"):
        await run.done()
        return _whole(run, completion_id, name)
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    response = StreamingHttpResponse(
        _stream(run, ChunkEncoder(completion_id=completion_id, model=name), include_usage),
        content_type="text/event-stream",
    )
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def _budget_hold(prepared: services.PreparedReply, key: Any) -> JsonResponse | None:
    """Hold the reply's place in the key owner's budgets (usage.budgets); the 429 to send
    when a limit is reached (money or tokens: insufficient_quota; the request rate:
    rate_limit_exceeded), with Retry-After."""
    history = prepared.history
    try:
        held = budget_reserve(
            user=key.user,
            provider=prepared.provider,
            model=prepared.model,
            input_tokens=history_tokens(history),
            max_output_tokens=prepared.options.max_tokens,
        )
    except BudgetExceeded as exceeded:
        verdict = exceeded.verdict
        rate = getattr(getattr(verdict, "line", None), "kind", "") == "requests"
        code = "rate_limit_exceeded" if rate else "insufficient_quota"
        response = _error(429, " ".join(exceeded.messages), type_=code, code=code)
        response["Retry-After"] = str(max(1, int(verdict.retry_after or 1)))
        return response
    prepared.budget_reservation_id = held.id
    return None


def _failure(failed: RunFailed) -> JsonResponse:
    status = _FAILURE_STATUS.get(failed.kind, 502)
    type_ = "rate_limit_error" if status == 429 else "server_error"
    if status == 400:
        type_ = "invalid_request_error"
    return _error(status, failed.message, type_=type_, code=failed.kind)


def _whole(run: services.ReplyRun, completion_id: str, name: str) -> JsonResponse:
    text: list[str] = []
    reasoning: list[str] = []
    end: Any = None
    for event in run.events:
        kind = type(event)
        if kind is TextDelta:
            text.append(event.text)
        elif kind is ReasoningDelta:
            reasoning.append(event.text)
        elif kind in (RunFinished, RunFailed, RunStopped):
            end = event
    if isinstance(end, RunFailed):
        return _failure(end)
    reason = getattr(end, "finish_reason", "") or (
        end.reason if isinstance(end, RunStopped) else "stop"
    )
    return JsonResponse(
        completion_body(
            completion_id=completion_id,
            model=name,
            created=int(time.time()),
            text="".join(text),
            reasoning="".join(reasoning),
            finish=finish_reason(reason),
            usage=run.usage,
        )
    )


async def _stream(
    run: services.ReplyRun, encoder: ChunkEncoder, include_usage: bool
) -> AsyncIterator[bytes]:
    heartbeat = settings.CHAT_HEARTBEAT_SECONDS
    events = run.events
    cursor = 1  # after RunStarted
    yield encoder.delta({"role": "assistant", "content": ""})
    last_sent = time.monotonic()
    try:
        while True:
            await run.wait(cursor)
            if len(events) > cursor:
                out: list[bytes] = []
                text: list[str] = []
                for event in events[cursor:]:
                    kind = type(event)
                    if kind is TextDelta:
                        text.append(event.text)
                        continue
                    if text:
                        out.append(encoder.delta({"content": "".join(text)}))
                        text = []
                    if kind is ReasoningDelta:
                        out.append(encoder.delta({"reasoning_content": event.text}))
                    elif kind is RunFailed:
                        out.append(
                            encoder.error(
                                error_body(event.message, type_="server_error", code=event.kind)
                            )
                        )
                        out.append(encoder.DONE)
                    elif kind in (RunFinished, RunStopped):
                        reason = event.finish_reason or (
                            event.reason if kind is RunStopped else "stop"
                        )
                        out.append(encoder.delta({}, finish_reason(reason)))
                        if include_usage:
                            out.append(encoder.usage(run.usage))
                        out.append(encoder.DONE)
                if text:
                    out.append(encoder.delta({"content": "".join(text)}))
                cursor = len(events)
                yield b"".join(out)
                last_sent = time.monotonic()
                if run.ended and cursor >= len(events):
                    return
            elif run.ended:
                return
            elif time.monotonic() - last_sent >= heartbeat:
                yield b": keep-alive\n\n"
                last_sent = time.monotonic()
    finally:
        if not run.ended:
            # The client went away: no one reads this reply, so the upstream request is
            # cancelled (unlike the chat page, whose replies outlive the tab).
            run.stop("stop")
