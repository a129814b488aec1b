"""Mistral AI through the official ``mistralai`` SDK (3.x).

Wire format (https://docs.mistral.ai/api/#tag/chat): ``POST /v1/chat/completions`` with
``stream: true`` answers Server-Sent Events in the OpenAI chunk shape: a first chunk with
the role and ``"content": ""``, ``delta.content`` as a string or, from reasoning models
(Magistral), as a list of typed chunks (``{"type": "thinking", "thinking": [{"type":
"text", ...}]}`` and ``{"type": "text", "text": ...}``), ``finish_reason`` (``stop``,
``length``, ``model_length``, ``tool_calls``, ``error``) and usage in the last chunk, then
``data: [DONE]``. The SDK is imported inside the functions that use it, so this module
imports without it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from .base_provider import (
    AuthenticationError,
    BadRequestError,
    BaseProvider,
    ChatOptions,
    Finish,
    FinishReason,
    Message,
    ModelNotFoundError,
    ProviderError,
    RateLimitedError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
    cannot_read_files,
    clean_upstream_message,
    is_blank,
    split_system,
)
from .capabilities import MISTRAL_MODELS, ModelCapabilities, lookup
from .clients import ClientConfig, SdkClients, shared_tls_context
from .transport import status_error, transport_error

logger = logging.getLogger(__name__)

# Mistral's finish reasons in our words; "error" is not a finish but a failure.
_FINISH_REASONS: dict[str, str] = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "model_length": FinishReason.LENGTH,  # the context window, not max_tokens
    "tool_calls": FinishReason.TOOL_CALLS,
}

# Mistral wants the last turn to be the user's ("Expected last role User or Tool (or
# Assistant with prefix True) for serving but got assistant"). A history that ends with
# the model's words (a cut reply the person wants continued) gets this after them, as
# for Anthropic and Gemini.
CONTINUE_USER_TURN = "[continue]"


def _map_messages(messages: Sequence[Message], system_prompt: str = "") -> list[dict[str, Any]]:
    """OpenAI-shaped messages for Mistral, valid whatever the stored history looks like
    after failed, stopped or empty replies (rules of Mistral's request validator,
    mistral-common ``MistralRequestValidator``):

    * one system message first, the options' prompt then any system messages: Mistral
      rejects a system message after an assistant turn ("Unexpected role 'system' after
      role 'assistant'");
    * turns without text are dropped: an assistant turn needs content ("Assistant
      message must have either content or tool_calls, but not both."), and a blank user
      turn says nothing;
    * consecutive turns of one role and a leading assistant turn are kept as they are:
      Mistral accepts user after user and a conversation that opens with the assistant,
      so nothing is merged or invented (a [user, user] history reaches the model as the
      person wrote it);
    * a trailing assistant turn gets ``CONTINUE_USER_TURN`` after it;
    * content parts become Mistral's content chunks (``_chunks``): text chunks and, for
      an image, ``{"type": "image_url", "image_url": "data:..."}``. A PDF cannot go:
      Mistral's document chunk takes only a URL, so PDFs are not native here (the app
      sends their text instead) and one that arrives raises BadRequestError.
    """
    system, turns = split_system(messages, system_prompt)
    turns = [
        {"role": turn["role"], "content": _chunks(turn["content"])}
        for turn in turns
        if not is_blank(turn["content"])
    ]
    if turns and turns[-1]["role"] == "assistant":
        turns.append({"role": "user", "content": CONTINUE_USER_TURN})
    return ([{"role": "system", "content": system}] if system else []) + turns


def _chunks(content: Any) -> str | list[dict[str, Any]]:
    """A turn's content for Mistral: text as it is; content parts as text and
    ``image_url`` chunks (the data URL as a plain string, as the SDK's
    ``ImageURLChunk`` takes it), blank text left out. Raises BadRequestError for a PDF."""
    if isinstance(content, str):
        return content
    chunks: list[dict[str, Any]] = []
    for part in content:
        kind = part["type"]
        if kind == "text":
            if part["text"].strip():
                chunks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            chunks.append({"type": "image_url", "image_url": part["image_url"]["url"]})
        elif kind == "file":
            raise cannot_read_files(MistralProvider.label, ("pdf",))
    return chunks


def takes_reasoning_effort(model: str, facts: Mapping[str, bool | None]) -> bool:
    """Whether ``model`` reasons, and so takes ``reasoning_effort``: the model list's
    ``capabilities.reasoning`` where it said, else ``capabilities.MISTRAL_MODELS``
    (Magistral)."""
    listed = facts.get("reasoning")
    if listed is not None:
        return bool(listed)
    return bool(lookup(MISTRAL_MODELS, model).reasoning)


def _build_request(
    messages: Sequence[Message],
    model: str,
    options: ChatOptions,
    facts: Mapping[str, bool | None] | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``client.chat.stream_async`` (stop sequences as ``stop``);
    ``reasoning_effort`` only for
    a model that reasons (``takes_reasoning_effort``; ``facts``: what the model list
    said). Raises BadRequestError when no turn has text, or for a PDF."""
    mapped = _map_messages(messages, options.system_prompt)
    if not any(m["role"] != "system" for m in mapped):
        raise BadRequestError("there is no message to answer")
    request: dict[str, Any] = {"model": model, "messages": mapped}
    if options.temperature is not None:
        request["temperature"] = float(options.temperature)
    if options.max_tokens is not None:
        request["max_tokens"] = options.max_tokens
    if options.stop:
        # A reply ended by a stop sequence has the finish reason "stop".
        request["stop"] = list(options.stop)
    if options.reasoning_effort is not None and takes_reasoning_effort(model, facts or {}):
        request["reasoning_effort"] = options.reasoning_effort
    return request


def _delta_events(content: Any) -> list[TextDelta | ReasoningDelta]:
    """The events in a delta's ``content``: a string is reply text; a list holds typed
    chunks, "text" ones reply text and "thinking" ones (reasoning models) the text
    chunks of their ``thinking`` list as reasoning. Other chunks (references) and
    empty text give nothing."""
    if isinstance(content, str):
        return [TextDelta(content)] if content else []
    events: list[TextDelta | ReasoningDelta] = []
    for chunk in content if isinstance(content, list) else ():
        kind = getattr(chunk, "type", None)
        if kind == "text" and isinstance(getattr(chunk, "text", None), str) and chunk.text:
            events.append(TextDelta(chunk.text))
        elif kind == "thinking":
            for inner in getattr(chunk, "thinking", None) or ():
                text = getattr(inner, "text", None)
                if getattr(inner, "type", "text") == "text" and isinstance(text, str) and text:
                    events.append(ReasoningDelta(text))
    return events


def _finish(reason: str) -> Finish:
    """The Finish for a ``finish_reason`` other than "error"; ``model_length`` (the
    context window was full) is ``length`` with that detail, an unknown reason is kept
    as it is."""
    detail = reason if reason == "model_length" else ""
    return Finish(_FINISH_REASONS.get(reason, reason), detail)


def _upstream_message(body: str) -> tuple[str, str]:
    """The message and error type from a Mistral error body, e.g.
    ``{"object": "error", "message": "Invalid model: x", "type": "invalid_model"}`` or
    a 422's ``{"detail": [{"loc": [...], "msg": "..."}]}``."""
    try:
        data = json.loads(body or "")
    except ValueError:  # an HTML page from a proxy, say: the default message reads better
        return "", ""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        data = data["error"]
    error_type = data.get("type") if isinstance(data, dict) else None
    return _readable(data), error_type if isinstance(error_type, str) else ""


def _readable(value: Any) -> str:
    """The human part of an error value: its message, detail or msg fields."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("message", "detail", "msg"):
            if value.get(key):
                return _readable(value[key])
        return ""
    if isinstance(value, list):
        return "; ".join(filter(None, (_readable(item) for item in value)))
    return "" if value is None else str(value)


class MistralProvider(BaseProvider):
    """Mistral AI chat completions, streamed."""

    label: ClassVar[str] = "Mistral AI"
    api_key_setting: ClassVar[str] = "MISTRAL_API_KEY"
    default_base_url: ClassVar[str] = "https://api.mistral.ai"
    required_packages: ClassVar[tuple[str, ...]] = ("mistralai",)
    install_hint: ClassVar[str] = "pip install mistralai"
    default_models: ClassVar[tuple[str, ...]] = (
        "mistral-large-latest",
        "mistral-medium-latest",
        "mistral-small-latest",
        "magistral-medium-latest",
        "codestral-latest",
        "ministral-8b-latest",
        "ministral-3b-latest",
    )

    def capabilities(self, model: str) -> ModelCapabilities:
        """Images and reasoning as the model list says (``capabilities.vision``,
        ``reasoning``), else as ``capabilities.MISTRAL_MODELS`` does; PDFs never native
        (see ``_map_messages``)."""
        return ModelCapabilities.from_facts(self.model_facts(model)).over(
            lookup(MISTRAL_MODELS, model)
        )

    def unsupported_options(self, model: str) -> dict[str, str]:
        """No thinking budget (Mistral has none); a reasoning effort only for models
        that reason."""
        from django.utils.translation import gettext

        unsupported = {"thinking_budget": gettext("Mistral models take no thinking budget")}
        if not takes_reasoning_effort(model, self.model_facts(model)):
            unsupported["reasoning_effort"] = gettext("this model does not reason")
        return unsupported

    async def _stream(
        self, messages: list[dict[str, Any]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        """Text as TextDelta, thinking chunks as ReasoningDelta, then Usage and Finish
        once a chunk gave a ``finish_reason``. A stream that ends without one yields no
        Finish (``BaseProvider.stream`` marks it cut off). ``finish_reason: "error"``
        and SDK errors raise ProviderError."""
        facts = await self.amodel_facts(model) if options.reasoning_effort else {}
        request = _build_request(messages, model, options, facts)
        finish: str | None = None
        usage: Usage | None = None
        received = False
        config = self._client_config()
        try:
            async with _CLIENTS.lease(config) as client:
                stream = await client.chat.stream_async(**request)
                async with stream:  # closes the HTTP response when the consumer stops
                    async for event in stream:
                        chunk = event.data
                        if chunk.usage is not None:
                            usage = Usage(
                                input_tokens=chunk.usage.prompt_tokens or 0,
                                output_tokens=chunk.usage.completion_tokens or 0,
                            )
                        if not chunk.choices:
                            continue
                        choice = chunk.choices[0]
                        for piece in _delta_events(choice.delta.content):
                            received = True
                            yield piece
                        if choice.finish_reason:
                            finish = str(choice.finish_reason)
        except Exception as e:
            mapped = self._map_error(e)
            if finish is None or finish == "error":
                raise mapped from e
            # The reply was whole; only the end of the stream ([DONE]) got lost.
            logger.info("%s: stream ended uncleanly after its finish (%s)", self.name, mapped.kind)
        if finish == "error":
            raise UnavailableError("the model failed while answering", provider=self.label)
        if usage is not None and (finish is not None or received):
            yield usage
        if finish is not None:
            yield _finish(finish)

    async def fetch_models(self) -> list[str]:
        """Ids of the chat models this key may use, sorted."""
        config = self._client_config()
        try:
            async with _CLIENTS.lease(config) as client:
                listing = await client.models.list_async()
        except Exception as e:
            raise self._map_error(e) from e
        cards = [
            card
            for card in listing.data or ()
            if isinstance(getattr(card, "id", None), str)
            and getattr(getattr(card, "capabilities", None), "completion_chat", False)
        ]
        await self.remember_model_facts(
            {
                card.id: {
                    "images": bool(card.capabilities.vision),
                    "pdf": False,
                    "reasoning": bool(card.capabilities.reasoning),
                }
                for card in cards
            }
        )
        return sorted({card.id for card in cards})

    def _map_error(self, e: BaseException) -> ProviderError:
        """The ProviderError for an SDK or transport exception. Mistral's own part: an
        HTTP error (``MistralError``) by its status and body (a 400 of type
        ``invalid_model`` is an unknown model), and a 200 stream event the SDK could not
        read (an error object, or malformed). Timeouts and connection faults are
        ``transport.transport_error``'s."""
        from mistralai.client.errors import MistralError, NoResponseError

        if isinstance(e, ProviderError):
            return e
        endpoint = self._endpoint()
        if isinstance(e, MistralError):
            if e.status_code < 400:  # a 200 stream with a chunk the SDK cannot read
                return self._stream_error(e.body) or UnavailableError(
                    "the reply was malformed", provider=self.label
                )
            message, error_type = _upstream_message(e.body)
            if e.status_code == 400 and error_type == "invalid_model":
                return ModelNotFoundError(
                    endpoint.redact(clean_upstream_message(message)),
                    provider=self.label,
                    status_code=400,
                )
            return status_error(e.status_code, message, endpoint, headers=e.headers)
        transport = transport_error(e, endpoint, connections=(NoResponseError,))
        if transport is not None:
            return transport
        return UnavailableError(
            endpoint.redact(clean_upstream_message(str(e))) or type(e).__name__,
            provider=self.label,
        )

    def _stream_error(self, body: str) -> ProviderError | None:
        """The ProviderError for an error object sent as an event of a 200 stream
        (``{"object": "error", "message": ..., "type": ...}``), None when the unreadable
        event is not one. The SDK reports it as a chunk it cannot read, ``body`` being
        the event as JSON (``{"data": ...}``)."""
        try:
            data = json.loads(body or "")
        except ValueError:
            return None
        data = data.get("data") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            data = data["error"]  # the OpenAI shape some gateways send
        elif not isinstance(data, dict) or (
            data.get("object") != "error" and not ("message" in data and "type" in data)
        ):
            return None
        message = clean_upstream_message(_readable(data)) or "the model failed while answering"
        error_type = str(data.get("type") or "").lower()
        cls: type[ProviderError] = UnavailableError
        if error_type == "invalid_model":
            cls = ModelNotFoundError
        elif "rate" in error_type or "capacity" in error_type:
            cls = RateLimitedError
        elif "auth" in error_type:
            cls = AuthenticationError
        elif error_type.startswith("invalid_request"):
            cls = BadRequestError
        return cls(message, provider=self.label)


def _build_client(config: ClientConfig) -> Any:
    """An SDK client for ``config``, its own retries off (``BaseProvider.stream``
    retries, before the first token only). Its HTTP clients share one TLS context
    (building one costs tens of milliseconds)."""
    import httpx2
    from mistralai.client import Mistral
    from mistralai.client.utils import BackoffStrategy, RetryConfig

    server_url = None
    if config.base_url:
        # The SDK's paths start with /v1; accept a base URL given with it too.
        server_url = config.base_url.rstrip("/").removesuffix("/v1")
    tls = shared_tls_context()
    return Mistral(
        api_key=config.api_key,
        server_url=server_url,
        client=httpx2.Client(verify=tls, follow_redirects=True),  # unused; the SDK wants one
        async_client=httpx2.AsyncClient(
            verify=tls,
            follow_redirects=True,
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=100),
        ),
        timeout_ms=int(config.timeout * 1000),
        retry_config=RetryConfig("none", BackoffStrategy(0, 0, 1.0, 0), False),
    )


async def _close_client(client: Any) -> None:
    """Close the HTTP clients given to the SDK (it leaves clients it did not make)."""
    configuration = client.sdk_configuration
    configuration.client.close()
    await configuration.async_client.aclose()


# This module's SDK clients, one per event loop and configuration (see clients.py).
_CLIENTS: SdkClients[Any] = SdkClients("mistralai", build=_build_client, close=_close_client)
