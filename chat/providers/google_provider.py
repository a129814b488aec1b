"""Google Gemini through the google-genai SDK (``from google import genai``).

The SDK posts to ``{base}/{version}/models/{model}:streamGenerateContent?alt=sse`` with
the key in the ``x-goog-api-key`` header. Gemini takes the system prompt apart
(``system_instruction``), calls the assistant ``model`` and wants user and model turns
to alternate. The SDK is imported lazily: without it this provider is merely unusable.
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
    Message,
    NotConfiguredError,
    ProviderError,
    ProviderTimeoutError,
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
_FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length"}
_CONTENT_FILTER_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
    }
)
# A base URL may end in the API version (".../v1beta"); the SDK wants it apart.
_VERSION_SEGMENT = re.compile(r"v\d+(?:(?:alpha|beta)\d*)?")
_RETRY_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def _map_messages(
    messages: Sequence[Message], system_prompt: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """The system instruction and Gemini ``contents`` for OpenAI-shaped messages: system
    messages join the system instruction, "assistant" becomes "model", blank turns are
    dropped (Gemini rejects empty text) and consecutive turns of one role are merged."""
    system, turns = split_system(messages, system_prompt)
    turns = [turn for turn in turns if turn["content"].strip()]
    contents = [
        {"role": _ROLES[turn["role"]], "parts": [{"text": turn["content"]}]}
        for turn in merge_consecutive(turns)
    ]
    if not contents:
        raise BadRequestError("there is no message to answer")
    return system, contents


def _build_request(messages: Sequence[Message], model: str, options: ChatOptions) -> dict[str, Any]:
    """Keyword arguments for ``client.aio.models.generate_content_stream``."""
    system, contents = _map_messages(messages, options.system_prompt)
    # The SDK would otherwise reconnect a broken stream by itself (retries belong to
    # BaseProvider.stream, before the first token only).
    config: dict[str, Any] = {"automatic_continuation": False}
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


def _finish_reason(reason: Any) -> str:
    """Gemini's finishReason in the project's words."""
    name = str(getattr(reason, "value", reason) or "").upper()
    if name in _CONTENT_FILTER_REASONS:
        return "content_filter"
    return _FINISH_REASONS.get(name, name.lower() or "stop")


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
        request = _build_request(messages, model, options)
        client = await self._client()
        stream = None
        usage = None
        finish: str | None = None
        sent_text = False
        try:
            stream = await client.aio.models.generate_content_stream(**request)
            async for chunk in stream:
                if chunk.usage_metadata is not None:
                    usage = chunk.usage_metadata
                feedback = chunk.prompt_feedback
                if feedback is not None and feedback.block_reason:
                    finish = "content_filter"  # the prompt itself was blocked
                for candidate in (chunk.candidates or [])[:1]:
                    parts = candidate.content.parts if candidate.content else None
                    for part in parts or ():
                        if part.text and not part.thought:
                            sent_text = True
                            yield TextDelta(part.text)
                    if candidate.finish_reason:
                        finish = _finish_reason(candidate.finish_reason)
        except ProviderError:
            raise
        except Exception as e:
            raise self._map_error(e) from e
        finally:
            await self._close(client, stream)
        if finish is None and not sent_text:
            raise UnavailableError("the reply was empty", provider=self.label)
        if usage is not None:
            yield Usage(
                input_tokens=usage.prompt_token_count or 0,
                # Thinking tokens are billed as output.
                output_tokens=(usage.candidates_token_count or 0)
                + (usage.thoughts_token_count or 0),
            )
        yield Finish(finish or "stop")

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
