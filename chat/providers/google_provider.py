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

import asyncio
import contextlib
import json
import logging
import re
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .base_provider import (
    AuthenticationError,
    BadRequestError,
    BaseProvider,
    ChatOptions,
    Finish,
    FinishReason,
    Message,
    NotConfiguredError,
    ProviderError,
    ProviderTimeoutError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
    clean_upstream_message,
    error_for_status,
    merge_consecutive,
    parse_retry_after,
    split_system,
)

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
    * blank turns are dropped: Gemini rejects a part without text ("required oneof field
      'data' must have one initialized field");
    * consecutive turns of one role are merged, separated by a blank line ("Please ensure
      that multiturn requests alternate between user and model"), so [user, user] (a
      failed reply left out) and [user, empty reply, user] go through with both texts;
    * a leading model turn gets ``OPENING_USER_TURN`` before it and a trailing one
      ``CONTINUE_USER_TURN`` after it (requests must start and end with the user).

    Raises BadRequestError when no turn has text."""
    system, turns = split_system(messages, system_prompt)
    turns = merge_consecutive([turn for turn in turns if turn["content"].strip()])
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": OPENING_USER_TURN})
    if turns and turns[-1]["role"] == "assistant":
        turns.append({"role": "user", "content": CONTINUE_USER_TURN})
    contents = [
        {"role": _ROLES[turn["role"]], "parts": [{"text": turn["content"]}]} for turn in turns
    ]
    if not contents:
        raise BadRequestError("there is no message to answer")
    return system, contents


def _build_request(messages: Sequence[Message], model: str, options: ChatOptions) -> dict[str, Any]:
    """Keyword arguments for ``client.aio.models.generate_content_stream``."""
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


def _transport_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """(timeout, connection) exception classes of the HTTP libraries the SDK has loaded
    (httpx2 by default; httpx or aiohttp when configured)."""
    timeouts: list[type[BaseException]] = [TimeoutError]
    connection: list[type[BaseException]] = [ConnectionError]
    for name in ("httpx2", "httpx"):
        module = sys.modules.get(name)
        if module is not None:
            timeouts.append(module.TimeoutException)
            connection.append(module.RequestError)
    aiohttp = sys.modules.get("aiohttp")
    if aiohttp is not None:
        connection.append(aiohttp.ClientError)
    return tuple(timeouts), tuple(connection)


class GoogleProvider(BaseProvider):
    """Gemini models through the Gemini Developer API."""

    label = "Google Gemini"
    api_key_setting = "GOOGLE_API_KEY"
    required_packages = ("google.genai",)
    install_hint = "pip install google-genai"
    default_models = (
        "gemini-3.5-flash",
        "gemini-3.1-pro-preview",
        "gemini-3.1-flash-lite",
        "gemini-2.5-pro",
        "gemini-2.5-flash",
    )

    async def _stream(
        self, messages: list[dict[str, str]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        """Text parts as TextDelta, thought parts as ReasoningDelta, then Usage and a
        Finish when a candidate gave a ``finishReason`` or the prompt was blocked. A
        stream that ends without either yields no Finish (``BaseProvider.stream`` marks
        it cut off). Raises ProviderError."""
        request = _build_request(messages, model, options)
        client = await self._client()
        stream = None
        usage = None
        finish: Finish | None = None
        received = False
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
                        yield ReasoningDelta(part.text) if part.thought else TextDelta(part.text)
                    finish = _finish(candidate.finish_reason, candidate.finish_message) or finish
        except ProviderError:
            raise
        except Exception as e:
            error = self._map_error(e)
            if finish is None:
                raise error from e
            # Gemini had said why it stopped; only the end of the stream got lost.
            logger.info("%s: stream ended uncleanly after its finish (%s)", self.name, error.kind)
        finally:
            await self._close(client, stream)
        if usage is not None and (finish is not None or received):
            yield _usage(usage)
        if finish is not None:
            yield finish

    async def fetch_models(self) -> list[str]:
        """Ids of the models this key may use for chat (``generateContent``)."""
        if not self.api_key:
            raise NotConfiguredError(f"no API key: set {self.api_key_setting}", provider=self.label)
        client = await self._client()
        try:
            pager = await client.aio.models.list(config={"page_size": 1000})
            return [
                model.name.removeprefix("models/")
                async for model in pager
                if model.name
                and "generateContent" in (model.supported_actions or ())
                and is_text_chat_model(model.name)
            ]
        except Exception as e:
            raise self._map_error(e) from e
        finally:
            await self._close(client)

    def _map_error(self, e: BaseException) -> ProviderError:
        """The ProviderError for an exception of the SDK or its HTTP library."""
        from google.genai import errors
        from pydantic import ValidationError

        if isinstance(e, ProviderError):
            return e
        if isinstance(e, errors.APIError):
            return self._map_api_error(e)
        timeouts, connection = _transport_errors()
        if isinstance(e, timeouts):
            return ProviderTimeoutError(provider=self.label)
        if isinstance(e, connection):
            connect_failed = type(e).__name__ in {"ConnectError", "ClientConnectorError"}
            message = (
                "could not connect to the service"
                if connect_failed
                else "the connection to the service broke off"
            )
            return UnavailableError(message, provider=self.label)
        if isinstance(e, (errors.UnknownApiResponseError, json.JSONDecodeError, ValidationError)):
            # Malformed JSON, or a shape the SDK's models reject.
            return UnavailableError(
                "the service sent a reply that could not be read", provider=self.label
            )
        logger.warning("%s: unexpected error", self.name, exc_info=e)
        return UnavailableError(f"unexpected error ({type(e).__name__})", provider=self.label)

    # -- internals -----------------------------------------------------------------------

    def _map_api_error(self, e: Any) -> ProviderError:
        status = e.code if isinstance(e.code, int) else 500
        message = str(e.message or "")
        headers = getattr(getattr(e, "response", None), "headers", None)
        retry_after = parse_retry_after(headers) if isinstance(headers, Mapping) else None
        if retry_after is None:
            retry_after = _retry_delay(e.details)
        bad_key = "API_KEY_INVALID" in _error_reasons(e.details)
        if status == 400 and bad_key:
            return AuthenticationError(
                clean_upstream_message(message), provider=self.label, status_code=status
            )
        return error_for_status(status, message, provider=self.label, retry_after=retry_after)

    async def _client(self) -> genai.Client:
        # Building a client loads CA certificates (tens of ms): keep it off the loop.
        try:
            return await asyncio.to_thread(self._make_client)
        except ImportError as e:
            raise NotConfiguredError(
                f"Python package missing: {self.install_hint}", provider=self.label
            ) from e
        except Exception as e:
            raise self._map_error(e) from e

    def _make_client(self) -> genai.Client:
        from google import genai
        from google.genai import types

        base_url, api_version = _split_api_version(self.base_url)
        http_options = types.HttpOptions(
            base_url=base_url,
            api_version=api_version,
            timeout=max(1, int(self.timeout * 1000)),  # milliseconds
            retry_options=types.HttpRetryOptions(attempts=1),  # BaseProvider retries
        )
        return genai.Client(api_key=self.api_key, vertexai=False, http_options=http_options)

    @staticmethod
    async def _close(client: genai.Client, stream: Any = None) -> None:
        """Close the response stream and the client's connections (also when the
        consumer stopped early), never masking the error being raised."""
        with contextlib.suppress(Exception):
            if stream is not None:
                await stream.aclose()
        with contextlib.suppress(Exception):
            await client.aio.aclose()
