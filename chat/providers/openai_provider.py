"""OpenAI, and every server that speaks its Chat Completions API.

``OpenAIProvider`` talks to api.openai.com (or a proxy set with ``OPENAI_BASE_URL``)
through the official ``openai`` SDK: ``chat.completions.with_streaming_response.create(
stream=True, stream_options={"include_usage": True})``; the text arrives as deltas, the
finish reason on the last choice and the token usage on a final chunk without choices.
The SDK sends the request (auth, base URL, headers, timeout) and raises its
``APIStatusError`` for an HTTP error status; the event stream itself is read here
(``event_stream.SSEParser``, ``json.loads``, ``ChunkReader`` on plain dicts), without the
SDK object per chunk that would take most of the CPU a relayed reply costs.

``OpenAICompatibleProvider`` is the same code for Ollama, vLLM, LM Studio, the llama.cpp
server, OpenRouter, Groq, DeepSeek...: the registry makes one subclass per endpoint
declared in ``OPENAI_COMPATIBLE_PROVIDERS`` (see ``register_openai_compatible``). It needs
a base URL, takes the key as optional, sends ``max_tokens`` (which those servers know)
instead of ``max_completion_tokens`` and shows their model list unfiltered.

Shape, as in every provider module: ``_map_messages`` and ``_build_request`` are pure,
``_stream`` makes the call, ``ChunkReader`` turns the streamed chunks into events and
``_map_error`` turns SDK errors into ``ProviderError`` (timeouts, connection faults and
HTTP statuses through the shared ``transport`` module). SDK clients are held by
``clients.SdkClients``. The SDK's own retries are off (``max_retries=0``):
``BaseProvider.stream`` retries, and only before the first token.

The stream shapes accepted (each is a case in chat/tests/providers/test_openai_provider.py,
served by chat/tests/fakes/openai_fake.py), beyond OpenAI's own:

* the usage on a last chunk without a ``choices`` key, or with ``choices: []`` (Azure's
  first chunk carries only ``prompt_filter_results``), or inside the finish chunk (vLLM,
  llama.cpp), or under ``x_groq.usage`` (Groq), with null counts tolerated;
* ``delta`` missing, ``{}`` or ``null``; ``content`` null, a string or a list of typed
  parts (Mistral's thinking/text chunks); reasoning in ``reasoning_content`` (DeepSeek,
  vLLM, llama.cpp, LM Studio) or ``reasoning`` (OpenRouter, Ollama, Groq), or inline as
  a leading ``<think>`` block (``reasoning.ThinkTagSplitter``);
* the choice followed is the first index that appears (some proxies number it 1);
* SSE comments (``: OPENROUTER PROCESSING``, ``: keep-alive``), fields other than
  ``data`` and ``event`` (llama.cpp's ``error:`` lines) and ``data: null`` are skipped;
  CRLF, LF and CR line ends are all read;
* errors inside a 200 stream: ``{"error": {...}}`` (OpenAI, OpenRouter, newer vLLM),
  ``{"object": "error", ...}`` (older vLLM), ``finish_reason: "error"`` or DeepSeek's
  ``insufficient_system_resource``: a ``ProviderError`` whose kind follows the error's
  code;
* a 200 answer that is not an event stream: a whole ``chat.completion`` JSON (a server
  that ignored ``stream``) is read as the reply; anything else (an HTML page) is an error
  naming its content type.

A ``Finish`` is yielded only when the upstream sent a finish reason: a stream that stops
without one (a proxy timing out, with or without ``[DONE]``) gets its end from
``BaseProvider.stream`` (cut off, or a retried failure when nothing arrived).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .base_provider import (
    AuthenticationError,
    BadRequestError,
    BaseProvider,
    ChatOptions,
    Finish,
    FinishReason,
    ModelNotFoundError,
    NotConfiguredError,
    PermissionDeniedError,
    ProviderError,
    ProviderStatus,
    ProviderTimeoutError,
    RateLimitedError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
    clean_upstream_message,
    error_for_status,
    gettext,
    is_blank,
    merge_consecutive,
    split_system,
)
from .capabilities import OPENAI_MINIMAL_EFFORT, OPENAI_MODELS, UNKNOWN, ModelCapabilities, lookup
from .clients import ClientConfig, SdkClients, shared_tls_context
from .event_stream import SSEParser
from .reasoning import ThinkTagSplitter, content_part_events
from .transport import is_transport_error, status_error, transport_error

if TYPE_CHECKING:
    import httpx2
    from openai import AsyncOpenAI

logger = logging.getLogger(__name__)

OPENAI_API_URL = "https://api.openai.com/v1"

# The SDK refuses an empty key; a keyless local server ignores this one.
KEY_PLACEHOLDER = "not-needed"

# Finish reasons as servers spell them -> FinishReason. OpenAI's own words, the older
# "function_call", TGI's "eos_token"/"stop_sequence", and Anthropic's words that some
# proxies pass through. Anything else is kept as the server's own word.
_FINISH_REASONS: dict[str, str] = {
    "stop": FinishReason.STOP,
    "eos": FinishReason.STOP,
    "eos_token": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "end_turn": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "max_tokens": FinishReason.LENGTH,
    "content_filter": FinishReason.CONTENT_FILTER,
    "refusal": FinishReason.REFUSAL,
    "tool_calls": FinishReason.TOOL_CALLS,
    "function_call": FinishReason.TOOL_CALLS,
    "tool_use": FinishReason.TOOL_CALLS,
}
# Finish reasons that say the server failed while answering (OpenRouter's "error",
# DeepSeek's "insufficient_system_resource"): an error, not an end.
_FAILED_FINISH_REASONS = {
    "error": "the server reported an error while answering",
    "insufficient_system_resource": "the server ran out of resources while answering",
}

# The Chat Completions API wants the history to start with a user turn after the system
# message on servers whose chat template enforces alternation; a conversation that opens
# with an assistant turn (a greeting the app showed) keeps it, after this stand-in.
OPENING_USER_TURN = "[conversation start]"

# Ids in OpenAI's model list that are not chat models (or not for Chat Completions).
_CHAT_PREFIXES = ("gpt-", "chatgpt-", "o1", "o3", "o4")
_NOT_CHAT = re.compile(
    r"embedding|tts|whisper|dall-e|moderation|transcribe|realtime|audio|image|"
    r"instruct|search|computer-use|deep-research|codex|sora|-pro\b"
)
# Reasoning models accept only their default temperature (they answer 400 otherwise).
_FIXED_TEMPERATURE = re.compile(r"^(o\d|gpt-5(?!-chat))")


def _base_model(model: str) -> str:
    return model.lower().removeprefix("ft:")


def is_chat_model(model_id: str) -> bool:
    """Whether an id from OpenAI's ``/models`` is a chat model usable here. Fine-tuned
    models (``ft:gpt-4o-mini:...``) count as their base model."""
    base = model_id.lower().removeprefix("ft:")
    return base.startswith(_CHAT_PREFIXES) and not _NOT_CHAT.search(base)


def accepts_temperature(model: str) -> bool:
    """False for OpenAI's reasoning models (o1, o3, o4-mini, gpt-5...), which reject any
    temperature but their default; ``gpt-5-chat-latest`` takes one."""
    return not _FIXED_TEMPERATURE.match(model.lower().removeprefix("ft:"))


def accepts_stop(model: str) -> bool:
    """False for OpenAI's reasoning models (o1, o3, o4-mini, gpt-5...), which answer
    "Unsupported parameter: 'stop' is not supported with this model" (the SDK's own
    docs: "Not supported with latest reasoning models o3 and o4-mini"); the same models
    as ``accepts_temperature``, so ``gpt-5-chat-latest`` takes stop sequences."""
    return accepts_temperature(model)


def alternating_history(
    messages: Sequence[Mapping[str, Any]], system_prompt: str = ""
) -> list[dict[str, Any]]:
    """OpenAI-shaped messages -> a history that chat templates requiring alternation
    accept, whatever happened in the conversation before.

    ``[{"role": "system"|"user"|"assistant", "content": str | parts}, ...]`` in, the
    same shape out (content parts, images and PDF files included, are kept as they are:
    the Chat Completions API reads them natively):

    * one system message first: the options' system prompt, then the text of any system
      messages of the history, joined by a blank line (the chat templates of Mistral,
      Llama 2 and Gemma accept a system message only in first place);
    * blank turns dropped (a failed, stopped or empty reply says nothing, and some
      servers reject empty content);
    * consecutive turns of one role merged into one, separated by a blank line. Those
      arise whatever the person does right: a reply that failed is left out of the
      history, so the question before it and the next one become two user turns in a
      row. Servers whose chat template requires alternation (vLLM, the llama.cpp server,
      LM Studio, Ollama, llama-cpp-python with a Mistral or Llama 2 template) answer them
      with "conversation roles must alternate user/assistant/user/assistant/...", and the
      conversation would fail from then on;
    * after the system message, a user turn first (``OPENING_USER_TURN`` before an
      opening assistant turn, which is kept: the next question may refer to it).
    """
    system, turns = split_system(messages, system_prompt)
    turns = merge_consecutive([turn for turn in turns if not is_blank(turn["content"])])
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": OPENING_USER_TURN})
    return [{"role": "system", "content": system}, *turns] if system else turns


def _build_client(config: ClientConfig) -> AsyncOpenAI:
    """An SDK client for ``config``, its own retries off (``BaseProvider.stream``
    retries, before the first token only) and no cap on concurrent streams (the SDK's
    default is 1,000 per client)."""
    import httpx2
    import openai

    return openai.AsyncOpenAI(
        api_key=config.api_key,
        base_url=config.base_url,
        timeout=config.timeout,
        max_retries=0,
        http_client=openai.DefaultAsyncHttpxClient(
            verify=shared_tls_context(),
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=100),
        ),
    )


async def _close_client(client: AsyncOpenAI) -> None:
    await client.close()


# The SDK clients of this module's providers (OpenAI and every compatible endpoint), one
# per event loop and configuration (see clients.py).
_CLIENTS: SdkClients[AsyncOpenAI] = SdkClients("openai", build=_build_client, close=_close_client)

# How long to read the rest of a body after [DONE] (usually only the end of the chunked
# encoding), so that the connection can serve the next request; as the SDK does.
_DRAIN_SECONDS = 0.1


class OpenAIProvider(BaseProvider):
    """OpenAI's Chat Completions API through the official SDK."""

    label = "OpenAI"
    api_key_setting = "OPENAI_API_KEY"
    default_base_url = OPENAI_API_URL
    required_packages = ("openai",)
    install_hint = "pip install openai"
    # Curated ids the API accepts, for when the live list cannot be had; the first is the
    # default choice (cheap and good).
    default_models = (
        "gpt-4o-mini",
        "gpt-4.1-mini",
        "gpt-4.1",
        "gpt-4o",
        "gpt-5-mini",
        "gpt-5",
        "o4-mini",
    )
    # OpenAI itself wants max_completion_tokens (its reasoning models reject max_tokens).
    max_tokens_param: ClassVar[str] = "max_completion_tokens"

    # -- pure parts ----------------------------------------------------------------------

    @staticmethod
    def _map_messages(
        messages: Sequence[Mapping[str, Any]], system_prompt: str = ""
    ) -> list[dict[str, Any]]:
        """A history every Chat Completions server accepts: see ``alternating_history``.
        Image (``image_url``) and PDF (``file``) parts go as they are: they are this
        API's own format.

        OpenAI proper gets the same history: its API takes any order, and reads two
        merged turns as it reads them apart, while ``OPENAI_BASE_URL`` may point at a
        gateway (LiteLLM, Azure, OpenRouter) in front of a model with a strict template.
        """
        return alternating_history(messages, system_prompt)

    def _build_request(
        self, messages: Sequence[Mapping[str, Any]], model: str, options: ChatOptions
    ) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create``. Options a model does
        not take (``unsupported_options``: a reasoning model's temperature and stop
        sequences...) are left out; stop sequences go as the ``stop`` list. Raises
        BadRequestError when the history holds nothing to answer (only blank turns)."""
        mapped = self._map_messages(messages, options.system_prompt)
        if not any(message["role"] != "system" for message in mapped):
            raise BadRequestError("there is no message to answer", provider=self.label)
        request: dict[str, Any] = {
            "model": model,
            "messages": mapped,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if options.temperature is not None and self._accepts_temperature(model):
            request["temperature"] = options.temperature
        if options.max_tokens is not None:
            request[self.max_tokens_param] = options.max_tokens
        if options.stop and self._accepts_stop(model):
            request["stop"] = list(options.stop)
        effort = self._reasoning_effort(model, options.reasoning_effort)
        if effort is not None:
            request["reasoning_effort"] = effort
        return request

    def _accepts_temperature(self, model: str) -> bool:
        return accepts_temperature(model)

    def _accepts_stop(self, model: str) -> bool:
        return accepts_stop(model)

    def _reasoning_effort(self, model: str, effort: str | None) -> str | None:
        """The ``reasoning_effort`` to send, None for none. Only OpenAI's reasoning
        models take it (others answer 400); "minimal" is GPT-5's alone, so the o-series
        gets its lowest, "low".

        Chat Completions gives no reasoning summary (only the Responses API does): a
        reasoning model's thinking is not shown, but its tokens are counted
        (``usage.completion_tokens_details.reasoning_tokens`` -> ``Usage.reasoning_tokens``,
        see ``read_usage``)."""
        if effort is None or not self.capabilities(model).reasoning:
            return None
        if effort == "minimal" and not OPENAI_MINIMAL_EFFORT.match(_base_model(model)):
            return "low"
        return effort

    def capabilities(self, model: str) -> ModelCapabilities:
        """From OpenAI's model table (its model list says nothing about inputs): see
        ``capabilities.OPENAI_MODELS``."""
        return lookup(OPENAI_MODELS, model)

    def unsupported_options(self, model: str) -> dict[str, str]:
        """Reasoning models (o-series, GPT-5) take no temperature and no stop
        sequences but a reasoning effort; the others the reverse. No OpenAI model takes
        a thinking budget."""
        unsupported = {
            "thinking_budget": gettext(
                "OpenAI models take a reasoning effort, not a thinking budget"
            )
        }
        if not self._accepts_temperature(model):
            unsupported["temperature"] = gettext("reasoning models use a fixed temperature")
        if not self._accepts_stop(model):
            unsupported["stop"] = gettext("reasoning models take no stop sequences")
        if not self.capabilities(model).reasoning:
            unsupported["reasoning_effort"] = gettext("this model does not reason")
        return unsupported

    def _keep_model(self, model_id: str) -> bool:
        return is_chat_model(model_id)

    # -- the client ----------------------------------------------------------------------

    def _resolved_base_url(self) -> str:
        return self.base_url or OPENAI_API_URL

    def _client_config(self) -> ClientConfig:
        """``BaseProvider._client_config`` with the base URL resolved and, for a keyless
        compatible server, the placeholder key the SDK wants (and, there, NotConfigured
        without a base URL)."""
        config = super()._client_config()
        return ClientConfig(self._sdk_api_key(), self._resolved_base_url(), config.timeout)

    def _sdk_api_key(self) -> str:
        return self.api_key

    # -- the calls -----------------------------------------------------------------------

    async def _stream(
        self, messages: list[dict[str, Any]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        """The reply's events, read from the HTTP response the SDK opened.

        The request goes out through the SDK (its auth, base URL, headers and timeout;
        an HTTP error status raises its ``APIStatusError`` before any byte of the body is
        read), but the body is parsed here (``SSEParser`` and ``json.loads`` into plain
        dicts for ``ChunkReader``) rather than into an SDK object per chunk, which costs
        most of the CPU of a relayed reply. Events are handled as the SDK handles them
        for Chat Completions: ``data: [DONE]`` ends the stream, an event whose JSON has a
        truthy ``error`` raises (``error_for_event``), named events are read like
        unnamed ones, and ``data: null`` is skipped."""
        request = self._build_request(messages, model, options)
        config = self._client_config()
        async with contextlib.AsyncExitStack() as stack:
            client = await stack.enter_async_context(_CLIENTS.lease(config))
            try:
                response = await stack.enter_async_context(
                    client.chat.completions.with_streaming_response.create(**request)
                )
            except Exception as e:
                blocked = _prompt_blocked(e)
                if blocked is not None:
                    yield blocked
                    return
                raise self._map_error(e) from e
            try:
                events = self._read_response(response.http_response)
                async with contextlib.aclosing(events):
                    async for event in events:
                        yield event
            except Exception as e:
                raise self._map_error(e) from e

    async def _read_response(self, http: httpx2.Response) -> AsyncIterator[StreamEvent]:
        """The events of an open 200 response: an event stream, or a whole
        ``chat.completion`` from a server that ignored ``stream``. Raises ProviderError,
        or the transport and JSON errors for ``_map_error``."""
        reader = ChunkReader(label=self.label)
        content_type = http.headers.get("content-type", "").split(";")[0].strip()
        if content_type == "application/json" or content_type.endswith("+json"):
            # A server that ignored ``stream``: the whole completion in one body.
            for event in reader.read_completion(_json(await http.aread(), self.label)):
                yield event
            return
        if content_type.startswith("text/html"):
            raise UnavailableError(
                f"{self._endpoint().host} answered with a web page ({content_type}), not an "
                f"event stream (check the base URL {self._resolved_base_url()})",
                provider=self.label,
            )
        parser = SSEParser()
        done = False
        async with contextlib.aclosing(http.aiter_bytes()) as chunks:
            try:
                async for chunk in chunks:
                    for _name, data in parser.feed(chunk):
                        if data.startswith(b"[DONE]"):
                            done = True
                            break
                        for event in self._read_event(reader, data):
                            yield event
                    if done:
                        break
            except Exception as e:
                if not (reader.finish_reason and is_transport_error(e)):
                    raise
                # The server said it finished; losing the connection after that (before
                # the usage or [DONE]) takes nothing from the reply.
                logger.info("%s: connection lost after the finish reason", self.name)
            if done and http.http_version == "HTTP/1.1":
                await _drain(chunks)
        if reader.chunks == 0:
            raise UnavailableError(
                f"{self._endpoint().host} sent no reply events "
                f"(content type {content_type or 'none'})",
                provider=self.label,
            )
        for event in reader.end():
            yield event

    def _read_event(self, reader: ChunkReader, data: bytes) -> list[StreamEvent]:
        """The events of one ``data:`` payload; an error object raises ProviderError."""
        chunk = _json(data, self.label)
        if isinstance(chunk, dict) and chunk.get("error"):
            # What the SDK raises as APIError for such an event, mapped as _map_error
            # maps that.
            error = chunk["error"]
            body = error if isinstance(error, Mapping) else {"message": str(error)}
            mapped = error_for_event(body, provider=self.label)
            mapped.message = self._endpoint().redact(mapped.message)
            raise mapped
        return reader.read(chunk)

    async def fetch_models(self) -> list[str]:
        config = self._client_config()
        try:
            async with _CLIENTS.lease(config) as client:
                page = await client.models.list()
                ids = [model.id async for model in page]
        except Exception as e:
            raise self._map_error(e) from e
        return sorted({model_id for model_id in ids if model_id and self._keep_model(model_id)})

    # -- errors --------------------------------------------------------------------------

    def _map_error(self, error: Exception) -> ProviderError:
        """The ProviderError for an SDK, transport or stream parsing error: transport
        faults as ``transport.transport_error`` words them, HTTP statuses by
        ``_status_error``, an error event by ``error_for_event``; never holds the key."""
        import openai

        if isinstance(error, ProviderError):
            return error
        endpoint = self._endpoint()
        transport = transport_error(
            error,
            endpoint,
            timeouts=(openai.APITimeoutError,),
            connections=(openai.APIConnectionError,),
        )
        if transport is not None:
            return transport
        if isinstance(error, openai.APIStatusError):
            return self._status_error(error)
        if isinstance(error, openai.APIError):  # an error event inside the stream
            body = error.body if isinstance(error.body, Mapping) else {"message": error.message}
            mapped = error_for_event(body, provider=self.label)
            mapped.message = endpoint.redact(mapped.message)
            return mapped
        if isinstance(error, ValueError):  # JSON that does not parse, bytes that are not UTF-8
            return UnavailableError("the reply could not be read", provider=self.label)
        return UnavailableError(
            endpoint.redact(clean_upstream_message(str(error))) or type(error).__name__,
            provider=self.label,
        )

    def _status_error(self, error: Any) -> ProviderError:
        """An ``APIStatusError``: the shared status mapping (``transport.status_error``),
        with what OpenAI's answers say beyond the status: a 401 says which setting to
        check, and a 404 that is not about the model points at the base URL."""
        status: int = error.status_code
        endpoint = self._endpoint()
        if status == 401:
            return AuthenticationError(
                f"invalid API key (check {self._api_key_setting_name()})",
                provider=self.label,
                status_code=status,
            )
        message = endpoint.redact(_error_message(error))
        if status == 404 and not _is_model_error(error, message):
            return BadRequestError(
                f"{message or 'not found'} (check the base URL {self._resolved_base_url()})",
                provider=self.label,
                status_code=status,
            )
        return status_error(status, message, endpoint, headers=error.response.headers)


def _json(data: bytes, label: str) -> Any:
    """``data`` parsed as JSON; UnavailableError when it is not JSON (or not UTF-8)."""
    try:
        return json.loads(data)
    except ValueError as e:
        raise UnavailableError("the reply could not be read", provider=label) from e


async def _drain(chunks: AsyncIterator[bytes]) -> None:
    """Read what is left of a body for up to ``_DRAIN_SECONDS``, so that HTTP/1.1 can
    reuse its connection; whatever goes wrong, the reply is already whole."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _chunk in chunks:
                pass


def _error_message(error: Any) -> str:
    """The upstream's own message: ``{"error": {"message": ...}}`` (the SDK keeps the
    inner object as ``body``) or a plain-text body."""
    body = getattr(error, "body", None)
    if isinstance(body, Mapping):
        message = body.get("message")
        if isinstance(message, str) and message.strip():
            return clean_upstream_message(message)
        detail = body.get("detail") or body.get("error")
        if isinstance(detail, str) and detail.strip():
            return clean_upstream_message(detail)
    if isinstance(body, str) and body.strip():
        return clean_upstream_message(body)
    return ""


def _is_model_error(error: Any, message: str) -> bool:
    code = getattr(error, "code", None) or ""
    return code == "model_not_found" or "model" in message.lower()


# Words in the ``code``/``type`` of an error reported inside a stream -> its kind, for
# errors without an HTTP status (OpenRouter's "server_error", vLLM's "BadRequestError").
_ERROR_WORDS: tuple[tuple[str, type[ProviderError]], ...] = (
    ("rate_limit", RateLimitedError),
    ("too_many_requests", RateLimitedError),
    ("quota", RateLimitedError),
    ("authentication", AuthenticationError),
    ("invalid_api_key", AuthenticationError),
    ("permission", PermissionDeniedError),
    ("model_not_found", ModelNotFoundError),
    ("notfound", ModelNotFoundError),
    ("context_length", BadRequestError),
    ("invalid_request", BadRequestError),
    ("badrequest", BadRequestError),
    ("timeout", ProviderTimeoutError),
)


def error_for_event(error: Mapping[str, Any], *, provider: str = "") -> ProviderError:
    """The ProviderError for an error an upstream reports inside a 200 stream.

    ``error`` is the error object: ``{"message", "code", "type", ...}`` as OpenAI,
    OpenRouter and vLLM send it (``{"error": {...}}``, or vLLM's older top-level
    ``{"object": "error", "message", "type", "code"}``). An HTTP status in ``code`` or
    ``status`` (OpenRouter sends 502, vLLM 400) chooses the kind as ``error_for_status``
    does; otherwise words of ``code``/``type`` do ("rate_limit_exceeded",
    "BadRequestError"...); anything else is ``UnavailableError``. The message is the
    upstream's own, cleaned (``clean_upstream_message``)."""
    message = clean_upstream_message(str(error.get("message") or "")) or (
        "the server reported an error while answering"
    )
    for key in ("code", "status", "status_code"):
        status = _http_status(error.get(key))
        if status is not None:
            return error_for_status(status, message, provider=provider)
    words = " ".join(str(error.get(key) or "") for key in ("code", "type")).lower()
    for word, cls in _ERROR_WORDS:
        if word in words:
            return cls(message, provider=provider)
    return UnavailableError(message, provider=provider)


def _http_status(value: Any) -> int | None:
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 400 <= value <= 599:
        return value
    return None


def _get(obj: Any, name: str) -> Any:
    """A field of a chunk part: a key of a dict, or a field (declared or extra) of an SDK
    model built without validation. None when absent. Per chunk, so it reads pydantic's
    ``__dict__`` and ``__pydantic_extra__`` directly: ``getattr`` of a missing extra
    field goes through pydantic's ``__getattr__`` and an exception, several times slower."""
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    fields = getattr(obj, "__dict__", None)
    if fields is None:
        return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    if name in fields:
        return fields[name]
    extra = getattr(obj, "__pydantic_extra__", None)
    return extra.get(name) if extra else None


def _getter(obj: Any) -> Callable[[str], Any]:
    """A function reading fields of ``obj`` as ``_get`` does: the dict's own ``get`` for
    a dict (what the stream parser makes; per chunk, so no extra call per field)."""
    if type(obj) is dict:
        return obj.get
    return functools.partial(_get, obj)


def _extra(obj: Any) -> Mapping[str, Any]:
    """The fields an SDK model does not declare (``x_groq``, ``prompt_filter_results``)."""
    if isinstance(obj, dict):
        return obj
    return getattr(obj, "__pydantic_extra__", None) or {}


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def read_usage(raw: Any) -> Usage | None:
    """``Usage`` from a Chat Completions usage object (``prompt_tokens``,
    ``completion_tokens``, ``completion_tokens_details.reasoning_tokens``), a dict or an
    SDK model; None when it holds no counts. Null counts read as 0."""
    if raw is None:
        return None
    prompt = _count(_get(raw, "prompt_tokens"))
    completion = _count(_get(raw, "completion_tokens"))
    if prompt is None and completion is None:
        return None
    reasoning = _count(_get(_get(raw, "completion_tokens_details"), "reasoning_tokens"))
    return Usage(prompt or 0, completion or 0, reasoning)


def _filtered_categories(results: Any) -> list[str]:
    """The categories Azure's content filter blocked (``{"hate": {"filtered": true}}``)."""
    if not isinstance(results, Mapping):
        return []
    return sorted(
        str(name)
        for name, result in results.items()
        if isinstance(result, Mapping) and result.get("filtered") is True
    )


def _prompt_blocked(error: Exception) -> Finish | None:
    """Azure OpenAI refuses a prompt its content filter blocks with a 400 whose code is
    "content_filter": that is the safety filter's answer, not a malformed request."""
    import openai

    if not isinstance(error, openai.BadRequestError) or error.code != "content_filter":
        return None
    body = error.body if isinstance(error.body, Mapping) else {}
    inner = body.get("innererror")
    categories = _filtered_categories(
        inner.get("content_filter_result") if isinstance(inner, Mapping) else None
    )
    detail = "prompt blocked" + (f": {', '.join(categories)}" if categories else "")
    return Finish(FinishReason.CONTENT_FILTER, detail)


class ChunkReader:
    """The events of one streamed Chat Completion, chunk by chunk (pure: no I/O).

    ``read(chunk)`` takes each chunk as parsed JSON (a dict, as ``OpenAIProvider`` and
    the local model give it; an SDK ``ChatCompletionChunk`` built without validation works
    too), in which any field may be missing, null or of another type, and returns the
    reasoning and text events in order.
    ``end()`` returns the rest once the stream is over: text held back by the ``<think>``
    splitter, the last usage seen, and a ``Finish`` only if the server sent a finish
    reason. ``read_completion(body)`` reads a whole non-streamed ``chat.completion``.
    Errors the server reports inside the stream raise ProviderError.
    """

    __slots__ = (
        "_index",
        "_refused",
        "_splitter",
        "chunks",
        "finish_detail",
        "finish_reason",
        "label",
        "usage",
    )

    def __init__(self, *, label: str = "") -> None:
        self.label = label
        self.chunks = 0  # chunks read (events of the stream that were JSON objects)
        self.finish_reason: str | None = None  # as the server spelt it
        self.finish_detail = ""
        self.usage: Usage | None = None
        self._index: Any = None  # the choice followed: the first index seen
        self._splitter = ThinkTagSplitter()
        self._refused = False

    def read(self, chunk: Any) -> list[StreamEvent]:
        """The events of one chunk. Raises ProviderError for an error it reports."""
        if chunk is None:  # "data: null"
            return []
        if isinstance(chunk, (str, list, int, float)):
            raise UnavailableError(
                "the reply could not be read (an event that is not a JSON object)",
                provider=self.label,
            )
        self.chunks += 1
        get = _getter(chunk)
        if get("object") == "error":
            raise error_for_event({**_extra(chunk), "object": "error"}, provider=self.label)
        raw_usage = get("usage")
        usage = read_usage(raw_usage) if raw_usage is not None else None
        if usage is None:
            groq = _extra(chunk).get("x_groq")
            usage = read_usage(_get(groq, "usage")) if groq is not None else None
        if usage is not None:
            self.usage = usage
        choices = get("choices")
        if not choices or not isinstance(choices, list):
            return []
        events: list[StreamEvent] = []
        for choice in choices:
            get_field = _getter(choice)
            index = get_field("index")
            if self._index is None:
                self._index = index
            elif index != self._index:
                continue  # another choice (we ask for one; some servers number it 1)
            delta = get_field("delta")
            if delta:
                self._read_delta(delta, events)
            finish = get_field("finish_reason")
            if finish and isinstance(finish, str):
                self._finish_reason(finish, choice)
        return events

    def _read_delta(self, delta: Any, events: list[StreamEvent]) -> None:
        get = _getter(delta)
        reasoning = get("reasoning_content")
        if not reasoning or not isinstance(reasoning, str):
            reasoning = get("reasoning")
        if reasoning and isinstance(reasoning, str):
            events.append(ReasoningDelta(reasoning))
        content = get("content")
        if isinstance(content, str):
            if content:
                events.extend(self._splitter.feed(content))
        elif isinstance(content, list):
            for event in content_part_events(content):
                if isinstance(event, TextDelta):
                    events.extend(self._splitter.feed(event.text))
                else:
                    events.append(event)
        refusal = get("refusal")
        if refusal and isinstance(refusal, str):
            self._refused = True
            events.extend(self._splitter.feed(refusal))

    def _finish_reason(self, finish: str, choice: Any) -> None:
        failed = _FAILED_FINISH_REASONS.get(finish.lower())
        if failed:
            raise UnavailableError(f"{failed} (finish reason {finish!r})", provider=self.label)
        self.finish_reason = finish
        if finish.lower() == "content_filter":
            categories = _filtered_categories(_get(choice, "content_filter_results"))
            self.finish_detail = ", ".join(categories)

    def end(self) -> list[StreamEvent]:
        """The events once the stream is over (see the class docstring)."""
        events: list[StreamEvent] = list(self._splitter.flush())
        if self.usage is not None:
            events.append(self.usage)
        if self.finish_reason:
            raw = self.finish_reason
            reason = _FINISH_REASONS.get(raw.lower(), raw)
            if self._refused:
                events.append(Finish(FinishReason.REFUSAL, "refusal"))
            else:
                detail = self.finish_detail or (raw if raw != reason else "")
                events.append(Finish(reason, detail))
        return events

    def read_completion(self, body: Any) -> list[StreamEvent]:
        """All events of a non-streamed ``chat.completion`` body (a parsed JSON value),
        for a server that answered ``stream: true`` with the whole reply at once."""
        if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
            raise error_for_event(body["error"], provider=self.label)
        choices = body.get("choices") if isinstance(body, Mapping) else None
        if not isinstance(choices, list):
            if isinstance(body, Mapping) and body.get("object") == "error":
                raise error_for_event(body, provider=self.label)
            raise UnavailableError(
                "the reply could not be read (a JSON answer that is not a chat completion)",
                provider=self.label,
            )
        chunk = {
            **body,
            "choices": [
                {**choice, "delta": choice.get("message")}
                for choice in choices
                if isinstance(choice, Mapping)
            ],
        }
        return [*self.read(chunk), *self.end()]


class OpenAICompatibleProvider(OpenAIProvider):
    """An OpenAI-compatible endpoint: Ollama, vLLM, LM Studio, the llama.cpp server,
    OpenRouter, Groq, DeepSeek... ``register_openai_compatible`` makes one subclass per
    endpoint, with its ``label``, ``endpoint_config`` and ``api_key_setting``."""

    label = "OpenAI-compatible"
    requires_api_key = False
    api_key_setting = ""
    default_base_url = ""
    install_hint = "pip install openai"
    default_models = ()
    # Most compatible servers know only the older name.
    max_tokens_param = "max_tokens"
    endpoint_config: ClassVar[Mapping[str, Any]] = {}

    @property
    def _setting_prefix(self) -> str:
        return self.name.upper().replace("-", "_")

    def _resolved_base_url(self) -> str:
        return self.base_url or ""

    def _sdk_api_key(self) -> str:
        return self.api_key or KEY_PLACEHOLDER

    def _client_config(self) -> ClientConfig:
        if not self.base_url:
            raise NotConfiguredError(
                f"no base URL: set {self._setting_prefix}_BASE_URL", provider=self.label
            )
        return super()._client_config()

    def _accepts_temperature(self, model: str) -> bool:
        return True  # a compatible server's own business

    def _accepts_stop(self, model: str) -> bool:
        return True  # as the temperature: the server decides

    def _reasoning_effort(self, model: str, effort: str | None) -> str | None:
        # Sent as given: Ollama, vLLM, Groq, OpenRouter and others read it for their
        # reasoning models; a server that does not answers with its own error.
        return effort

    def capabilities(self, model: str) -> ModelCapabilities:
        """Unknown: a compatible server may serve any model (images and PDFs are sent
        as OpenAI parts, and the server's error is shown if it refuses them)."""
        return UNKNOWN

    def unsupported_options(self, model: str) -> dict[str, str]:
        """Temperature, stop sequences and reasoning effort go to the server as given;
        a thinking budget has no field in the Chat Completions API."""
        return {
            "thinking_budget": gettext(
                "OpenAI-compatible servers take a reasoning effort, not a thinking budget"
            )
        }

    def _keep_model(self, model_id: str) -> bool:
        return True

    def _status_error(self, error: Any) -> ProviderError:
        if error.status_code == 401:
            setting = self.api_key_setting or f"{self._setting_prefix}_API_KEY"
            reason = "invalid API key" if self.api_key else "this server needs an API key"
            return AuthenticationError(
                f"{reason} (check {setting})", provider=self.label, status_code=401
            )
        return super()._status_error(error)

    def validate_config(self) -> bool:
        return bool(self.base_url) and super().validate_config()

    def status(self) -> ProviderStatus:
        if not self.missing_packages() and not self.base_url:
            return ProviderStatus(
                self.name,
                self.label,
                False,
                reason=gettext("no base URL"),
                hint=gettext("set %(setting)s") % {"setting": f"{self._setting_prefix}_BASE_URL"},
            )
        return super().status()
