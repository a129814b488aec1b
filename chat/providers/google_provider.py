"""Google Gemini through the google-genai SDK (``from google import genai``).

The SDK posts to ``{base}/{version}/models/{model}:streamGenerateContent?alt=sse`` with
the key in the ``x-goog-api-key`` header. Gemini takes the system prompt apart
(``system_instruction``), calls the assistant ``model`` and wants user and model turns
to alternate. The SDK is imported lazily: without it this provider is merely unusable.

Wire format (https://ai.google.dev/api/generate-content#method:-models.streamgeneratecontent):
each ``data:`` event is a whole ``GenerateContentResponse``. ``candidates[0].content.parts``
carry the text (``"thought": true`` parts are thought summaries); ``finishReason`` comes on
the last candidate only, often with no content (the SDK passes its ``finishMessage`` on for
Vertex only); ``usageMetadata`` (``thoughtsTokenCount`` apart from ``candidatesTokenCount``)
may come on every event or on the last only; a blocked prompt is
``promptFeedback.blockReason`` with no candidates. There is no end marker: a stream without
any ``finishReason`` was cut.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .base_provider import (
    BadRequestError,
    BaseProvider,
    ChatOptions,
    Finish,
    FinishReason,
    Message,
    ProviderError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
    clean_upstream_message,
    is_blank,
    merge_consecutive,
    parse_retry_after,
    split_system,
)
from .capabilities import GEMINI_MODELS, GEMINI_THINKING_LEVELS, ModelCapabilities, lookup
from .clients import ClientConfig, SdkClients, shared_tls_context
from .messages import image_source, pdf_source
from .transport import invalid_key_error, status_error, transport_error

if TYPE_CHECKING:
    from google import genai

logger = logging.getLogger(__name__)

_ROLES = {"user": "user", "assistant": "model"}
_FINISH_REASONS: dict[str, str] = {
    "STOP": FinishReason.STOP,
    "MAX_TOKENS": FinishReason.LENGTH,
    # The per-request token limit with more to say (the SDK's automatic continuation is
    # off, as retries belong to BaseProvider.stream): the reply is cut by a limit.
    "CONTINUATION": FinishReason.LENGTH,
}
# Finish reasons that mean a filter (safety, recitation, blocklists, policy) stopped it.
_CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
        "MODEL_ARMOR",
        "ESCALATION",
        "PUP_LIMITED_DISABLED",
    }
)
_UNSPECIFIED = frozenset({"", "FINISH_REASON_UNSPECIFIED", "BLOCKED_REASON_UNSPECIFIED"})
# A base URL may end in the API version (".../v1beta"); the SDK wants it apart.
_VERSION_SEGMENT = re.compile(r"v\d+(?:(?:alpha|beta)\d*)?")
_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")

# Gemini wants the first and the last turn to be the user's ("Please ensure that
# multiturn requests ends with a user role or a function response"). A history that
# opens with the model's words (the app's greeting) keeps them after this stand-in...
OPENING_USER_TURN = "[conversation start]"
# ...and one that ends with them (a cut reply the person wants continued) gets this.
CONTINUE_USER_TURN = "[continue]"


def _map_messages(
    messages: Sequence[Message], system_prompt: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """The system instruction and Gemini ``contents`` for OpenAI-shaped messages, valid
    whatever the stored history looks like after failed, stopped or empty replies:

    * system messages join the system instruction (the options' prompt first);
    * "assistant" becomes "model";
    * text becomes a text part; content parts become parts in their order: text parts,
      and images and PDFs as inline data (``types.Part.from_bytes``), blank text left
      out;
    * blank turns are dropped: Gemini rejects a part without text ("required oneof field
      'data' must have one initialized field");
    * consecutive turns of one role are merged, separated by a blank line ("Please ensure
      that multiturn requests alternate between user and model"), so [user, user] (a
      failed reply left out) and [user, empty reply, user] go through with both texts;
    * a leading model turn gets ``OPENING_USER_TURN`` before it and a trailing one
      ``CONTINUE_USER_TURN`` after it (requests must start and end with the user).

    Raises BadRequestError when no turn has text."""
    system, turns = split_system(messages, system_prompt)
    turns = merge_consecutive([turn for turn in turns if not is_blank(turn["content"])])
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": OPENING_USER_TURN})
    if turns and turns[-1]["role"] == "assistant":
        turns.append({"role": "user", "content": CONTINUE_USER_TURN})
    contents = [{"role": _ROLES[turn["role"]], "parts": _parts(turn["content"])} for turn in turns]
    if not contents:
        raise BadRequestError("there is no message to answer")
    return system, contents


def _parts(content: Any) -> list[Any]:
    """A turn's Gemini parts: ``{"text": ...}`` for text, ``types.Part`` with inline
    data (its bytes and MIME type) for an image or a PDF."""
    if isinstance(content, str):
        return [{"text": content}]
    from google.genai import types

    parts: list[Any] = []
    for part in content:
        kind = part["type"]
        if kind == "text":
            if part["text"].strip():
                parts.append({"text": part["text"]})
        elif kind == "image_url":
            image = image_source(part)
            parts.append(types.Part.from_bytes(data=image.data(), mime_type=image.mime_type))
        elif kind == "file":
            _filename, pdf = pdf_source(part)
            parts.append(types.Part.from_bytes(data=pdf.data(), mime_type=pdf.mime_type))
    return parts


def thinks(model: str, facts: Mapping[str, bool | None] | None = None) -> bool:
    """Whether ``model`` thinks (and takes a thinking config): the model list's
    ``thinking`` where it said, else ``capabilities.GEMINI_MODELS`` (Gemini 2.5 and
    later)."""
    listed = (facts or {}).get("reasoning")
    if listed is not None:
        return bool(listed)
    return bool(lookup(GEMINI_MODELS, model).reasoning)


def takes_thinking_level(model: str, facts: Mapping[str, bool | None] | None = None) -> bool:
    """Whether ``model`` takes ``thinking_level`` (Gemini 3 and later; 2.5 takes only a
    budget)."""
    return thinks(model, facts) and bool(GEMINI_THINKING_LEVELS.match(model.lower()))


def _thinking_config(
    model: str, options: ChatOptions, facts: Mapping[str, bool | None] | None
) -> dict[str, Any] | None:
    """``thinking_config`` for a model that thinks, None for one that does not (which
    would reject it). Thought summaries are always asked for (``include_thoughts``), so
    they stream as ReasoningDelta. The API takes a level or a budget, not both: the
    reasoning effort becomes ``thinking_level`` where the model takes one (MINIMAL,
    LOW, MEDIUM, HIGH), else the thinking budget is ``thinking_budget``."""
    if not thinks(model, facts):
        return None
    config: dict[str, Any] = {"include_thoughts": True}
    if options.reasoning_effort is not None and takes_thinking_level(model, facts):
        config["thinking_level"] = options.reasoning_effort.upper()
    elif options.thinking_budget is not None:
        config["thinking_budget"] = options.thinking_budget
    return config


def _build_request(
    messages: Sequence[Message],
    model: str,
    options: ChatOptions,
    facts: Mapping[str, bool | None] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``client.aio.models.generate_content_stream``. ``facts``:
    what the model list said about ``model`` (``BaseProvider.model_facts``); the
    thinking configuration is ``_thinking_config``'s."""
    system, contents = _map_messages(messages, options.system_prompt)
    config: dict[str, Any] = {
        # The SDK would otherwise reconnect a broken stream by itself (retries belong to
        # BaseProvider.stream, before the first token only).
        "automatic_continuation": False,
        # No tools are declared, so automatic function calling has nothing to do; left
        # on, the SDK runs its loop and logs "AFC is enabled" (google_genai.models, INFO)
        # on every call.
        "automatic_function_calling": {"disable": True},
    }
    if system:
        config["system_instruction"] = system
    if options.temperature is not None:
        config["temperature"] = float(options.temperature)
    if options.max_tokens is not None:
        config["max_output_tokens"] = options.max_tokens
    if options.stop:
        # GenerateContentConfig.stop_sequences (up to 5); a reply ended by one has the
        # finish reason STOP, a normal stop.
        config["stop_sequences"] = list(options.stop)
    thinking = _thinking_config(model, options, facts)
    if thinking is not None:
        config["thinking_config"] = thinking
    return {"model": model, "contents": contents, "config": config}


# Models that answer generateContent but not with chat text: speech, images, video,
# embeddings, attributed QA and robotics.
_NON_CHAT_MARKERS = ("-tts", "image", "imagen", "veo", "embedding", "aqa", "robotics", "audio")


def is_text_chat_model(name: str) -> bool:
    """Whether a Gemini model id belongs in a text chat's model menu."""
    model_id = name.removeprefix("models/").lower()
    return not any(marker in model_id for marker in _NON_CHAT_MARKERS)


def _enum_name(value: Any) -> str:
    """The upper-case name of an SDK enum value (or of a raw string the SDK passed on)."""
    return str(getattr(value, "value", value) or "").upper()


def _finish_reason(reason: Any) -> str | None:
    """Gemini's finishReason in the project's words (``FinishReason``), its own word in
    lower case when nothing fits ("malformed_function_call"), None when it is unset."""
    name = _enum_name(reason)
    if name in _UNSPECIFIED:
        return None
    if name in _CONTENT_FILTER_REASONS:
        return FinishReason.CONTENT_FILTER
    return _FINISH_REASONS.get(name, name.lower())


def _finish(reason: Any, message: str | None = None) -> Finish | None:
    """The Finish for a candidate's ``finishReason`` and ``finishMessage``, None when the
    candidate has not finished. ``detail`` keeps Gemini's own reason when the project's
    word says less ("SAFETY", "RECITATION", "CONTINUATION"), with its message if any."""
    word = _finish_reason(reason)
    if word is None:
        return None
    name = _enum_name(reason)
    said = [] if word == FinishReason.STOP or name == "MAX_TOKENS" else [name]
    if message and message.strip():
        said.append(message)
    return Finish(word, clean_upstream_message(": ".join(said)))


def _prompt_blocked(feedback: Any) -> Finish | None:
    """``promptFeedback.blockReason``: the prompt itself was refused by a filter, and no
    candidate comes. Finish(content_filter, "prompt blocked: OTHER"), or None."""
    name = _enum_name(getattr(feedback, "block_reason", None))
    if name in _UNSPECIFIED:
        return None
    detail = f"prompt blocked: {name}"
    message = getattr(feedback, "block_reason_message", None)
    if message and message.strip():
        detail += f" ({message})"
    return Finish(FinishReason.CONTENT_FILTER, clean_upstream_message(detail))


def _usage(metadata: Any) -> Usage:
    """Usage from ``usageMetadata``: thinking tokens are billed as output, so
    ``output_tokens`` is candidates + thoughts and ``reasoning_tokens`` the thoughts."""
    thoughts = metadata.thoughts_token_count
    return Usage(
        input_tokens=metadata.prompt_token_count or 0,
        output_tokens=(metadata.candidates_token_count or 0) + (thoughts or 0),
        reasoning_tokens=thoughts,
    )


def _split_api_version(base_url: str | None) -> tuple[str | None, str | None]:
    """``("https://host/prefix", "v1beta")`` for "https://host/prefix/v1beta"."""
    if not base_url:
        return None, None
    parts = urlsplit(base_url.rstrip("/"))
    head, _, last = parts.path.rpartition("/")
    if not _VERSION_SEGMENT.fullmatch(last):
        return base_url, None
    return urlunsplit(parts._replace(path=head)), last


def _retry_delay(details: Any) -> float | None:
    """Seconds from a google.rpc.RetryInfo in an error body ("retryDelay": "37s")."""
    error = details.get("error", details) if isinstance(details, Mapping) else None
    items = error.get("details") if isinstance(error, Mapping) else None
    for item in items if isinstance(items, list) else ():
        if isinstance(item, Mapping) and str(item.get("@type", "")).endswith("RetryInfo"):
            match = _RETRY_DELAY.match(str(item.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _error_reasons(details: Any) -> set[str]:
    """The google.rpc.ErrorInfo reasons in an error body (e.g. "API_KEY_INVALID")."""
    error = details.get("error", details) if isinstance(details, Mapping) else None
    items = error.get("details") if isinstance(error, Mapping) else None
    return {
        str(item["reason"])
        for item in (items if isinstance(items, list) else ())
        if isinstance(item, Mapping) and item.get("reason")
    }


def _build_client(config: ClientConfig) -> genai.Client:
    """An SDK client for ``config`` (Gemini Developer API, not Vertex), its own retries
    off (``BaseProvider.stream`` retries, before the first token only), its HTTP clients
    on the shared TLS context (the same trust store the SDK would load, once per process)."""
    from google import genai
    from google.genai import types

    base_url, api_version = _split_api_version(config.base_url)
    http_options = types.HttpOptions(
        base_url=base_url,
        api_version=api_version,
        timeout=max(1, int(config.timeout * 1000)),  # milliseconds
        retry_options=types.HttpRetryOptions(attempts=1),
        client_args={"verify": shared_tls_context()},
        async_client_args={
            "verify": shared_tls_context(),
            "event_hooks": {"response": [_note_response]},
        },
    )
    return genai.Client(api_key=config.api_key, vertexai=False, http_options=http_options)


# The HTTP responses the running stream opened (see _note_response), so that it can
# close them when its consumer stops early: the SDK's nested generators hold the
# response in a reference cycle, which only the garbage collector would close, and the
# client, with its connection pool, is shared by other requests.
_OPENED: contextvars.ContextVar[list[Any] | None] = contextvars.ContextVar(
    "google_opened_responses", default=None
)


async def _note_response(response: Any) -> None:
    """httpx's response hook: note ``response`` for the stream that is running."""
    opened = _OPENED.get()
    if opened is not None:
        opened.append(response)


async def _close_client(client: genai.Client) -> None:
    client.close()  # the synchronous HTTP client (unused, but it holds a pool)
    await client.aio.aclose()


# This module's SDK clients, one per event loop and configuration (see clients.py).
_CLIENTS: SdkClients[genai.Client] = SdkClients(
    "google-genai", build=_build_client, close=_close_client
)


class GoogleProvider(BaseProvider):
    """Gemini models through the Gemini Developer API."""

    label = "Google Gemini"
    api_key_setting = "GOOGLE_API_KEY"
    default_base_url = "https://generativelanguage.googleapis.com"
    required_packages = ("google.genai",)
    install_hint = "pip install google-genai"
    default_models = (
        "gemini-3.5-flash",
        "gemini-3.1-pro-preview",
        "gemini-3.1-flash-lite",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
    )

    def capabilities(self, model: str) -> ModelCapabilities:
        """Images and PDFs from ``capabilities.GEMINI_MODELS``; thinking as the model
        list says (``thinking``), else as the table does."""
        return ModelCapabilities.from_facts(self.model_facts(model)).over(
            lookup(GEMINI_MODELS, model)
        )

    def unsupported_options(self, model: str) -> dict[str, str]:
        """Gemini takes a temperature everywhere; a thinking budget only on models that
        think (2.5 and later), a reasoning effort only on those that take a thinking
        level (3 and later)."""
        from django.utils.translation import gettext

        facts = self.model_facts(model)
        unsupported: dict[str, str] = {}
        if not thinks(model, facts):
            reason = gettext("this model does not think")
            unsupported["thinking_budget"] = reason
            unsupported["reasoning_effort"] = reason
        elif not takes_thinking_level(model, facts):
            unsupported["reasoning_effort"] = gettext(
                "this model takes a thinking budget, not a reasoning effort"
            )
        return unsupported

    async def _stream(
        self, messages: list[dict[str, Any]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        """Text parts as TextDelta, thought parts as ReasoningDelta, then Usage (thought
        tokens apart) and a Finish when a candidate gave a ``finishReason`` or the prompt
        was blocked. A stream that ends without either yields no Finish
        (``BaseProvider.stream`` marks it cut off). Raises ProviderError."""
        # The model list's word is read only for reasoning settings (a cache read costs a
        # thread hop); without them, the table decides whether thoughts are asked for.
        reasoning_set = options.thinking_budget is not None or options.reasoning_effort
        facts = await self.amodel_facts(model) if reasoning_set else {}
        request = _build_request(messages, model, options, facts)
        config = self._client_config()
        stream = None
        usage = None
        finish: Finish | None = None
        received = False
        opened: list[Any] = []
        _OPENED.set(opened)
        try:
            async with _CLIENTS.lease(config) as client:
                try:
                    stream = await client.aio.models.generate_content_stream(**request)
                    async for chunk in stream:
                        if chunk.usage_metadata is not None:
                            usage = chunk.usage_metadata
                        finish = _prompt_blocked(chunk.prompt_feedback) or finish
                        for candidate in (chunk.candidates or [])[:1]:
                            parts = candidate.content.parts if candidate.content else None
                            for part in parts or ():
                                if not part.text:  # empty text, signatures, non-text parts
                                    continue
                                received = True
                                yield (
                                    ReasoningDelta(part.text)
                                    if part.thought
                                    else TextDelta(part.text)
                                )
                            finish = (
                                _finish(candidate.finish_reason, candidate.finish_message) or finish
                            )
                finally:
                    _OPENED.set(None)
                    await _close_stream(stream, opened)
        except ProviderError:
            raise
        except Exception as e:
            error = self._map_error(e)
            if finish is None:
                raise error from e
            # Gemini had said why it stopped; only the end of the stream got lost.
            logger.info("%s: stream ended uncleanly after its finish (%s)", self.name, error.kind)
        if usage is not None and (finish is not None or received):
            yield _usage(usage)
        if finish is not None:
            yield finish

    async def fetch_models(self) -> list[str]:
        """Ids of the models this key may use for chat (``generateContent``). Whether
        each thinks (the list's ``thinking``) is remembered for ``capabilities``."""
        config = self._client_config()
        try:
            async with _CLIENTS.lease(config) as client:
                pager = await client.aio.models.list(config={"page_size": 1000})
                models = [
                    model
                    async for model in pager
                    if model.name
                    and "generateContent" in (model.supported_actions or ())
                    and is_text_chat_model(model.name)
                ]
        except Exception as e:
            raise self._map_error(e) from e
        await self.remember_model_facts(
            {
                model.name.removeprefix("models/"): {"reasoning": model.thinking}
                for model in models
                if isinstance(model.thinking, bool)
            }
        )
        return [model.name.removeprefix("models/") for model in models]

    def _map_error(self, e: BaseException) -> ProviderError:
        """The ProviderError for an exception of the SDK or its HTTP library: the SDK's
        ``APIError`` by ``_map_api_error``, timeouts and connection faults by
        ``transport.transport_error`` (httpx2 by default; httpx or aiohttp when
        configured), a reply the SDK could not parse as unavailable."""
        from google.genai import errors
        from pydantic import ValidationError

        if isinstance(e, ProviderError):
            return e
        if isinstance(e, errors.APIError):
            return self._map_api_error(e)
        transport = transport_error(e, self._endpoint())
        if transport is not None:
            return transport
        if isinstance(e, (errors.UnknownApiResponseError, json.JSONDecodeError, ValidationError)):
            # Malformed JSON, or a shape the SDK's models reject.
            return UnavailableError(
                "the service sent a reply that could not be read", provider=self.label
            )
        logger.warning("%s: unexpected error", self.name, exc_info=e)
        return UnavailableError(f"unexpected error ({type(e).__name__})", provider=self.label)

    # -- internals -----------------------------------------------------------------------

    def _map_api_error(self, e: Any) -> ProviderError:
        """Gemini's own part of the mapping: the status (``code``), the wait from
        Retry-After or a google.rpc.RetryInfo detail, and a 400 whose reason is
        API_KEY_INVALID as a refused key."""
        endpoint = self._endpoint()
        status = e.code if isinstance(e.code, int) else 500
        headers = getattr(getattr(e, "response", None), "headers", None)
        retry_after = parse_retry_after(headers) if isinstance(headers, Mapping) else None
        if retry_after is None:
            retry_after = _retry_delay(e.details)
        if status == 400 and "API_KEY_INVALID" in _error_reasons(e.details):
            return invalid_key_error(endpoint, status_code=status)
        return status_error(status, str(e.message or ""), endpoint, retry_after=retry_after)


async def _close_stream(stream: Any, responses: list[Any]) -> None:
    """Close the SDK's stream and the HTTP ``responses`` it opened (also when the
    consumer stopped early: the connection to the upstream ends at once), never masking
    the error being raised."""
    if stream is not None:
        with contextlib.suppress(Exception):
            await stream.aclose()
    for response in responses:
        with contextlib.suppress(Exception):
            await response.aclose()
