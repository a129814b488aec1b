"""Claude through Anthropic's Messages API (the ``anthropic`` SDK, 2.x).

The SDK 2.x speaks API version 2026-10-21: it sends the key as ``Authorization: Bearer``,
and that API version has no sampling parameters (``temperature``, ``top_p``, ``top_k``
are rejected with a 400 even at their default values), so a temperature is not sent.

Wire format (https://platform.claude.com/docs/en/build-with-claude/streaming):
``POST /v1/messages`` with ``stream: true`` answers named Server-Sent Events:
``message_start`` (input usage), any number of ``ping``, per content block
``content_block_start`` / ``content_block_delta`` (``text_delta``, ``thinking_delta``,
``signature_delta``, ``input_json_delta``, ``citations_delta``) / ``content_block_stop``,
then ``message_delta`` (``stop_reason``, ``stop_details``, cumulative usage) and
``message_stop``. An ``error`` event (``overloaded_error``...) may come at any point.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

from .base_provider import (
    BadRequestError,
    BaseProvider,
    ChatOptions,
    Finish,
    FinishReason,
    Message,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    ReasoningDelta,
    StreamEvent,
    TextDelta,
    UnavailableError,
    Usage,
    clean_upstream_message,
    is_blank,
    merge_consecutive,
    split_system,
)
from .capabilities import ANTHROPIC_EFFORT, ANTHROPIC_MODELS, ModelCapabilities, lookup
from .clients import ClientConfig, SdkClients, shared_tls_context
from .messages import PDF_MIME_TYPE, image_source, pdf_source
from .transport import status_error, transport_error

logger = logging.getLogger(__name__)

# Anthropic requires max_tokens. Current models think before they answer (adaptive
# thinking) and the thinking counts against max_tokens, so the default leaves room for
# both; every current model accepts at least 64K.
DEFAULT_MAX_TOKENS = 16_000

# Anthropic's effort levels for ours (``ChatOptions.reasoning_effort``): it has no
# "minimal", so that is its lowest.
_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}

# The Messages API wants the first turn to be the user's. A conversation that opens with
# an assistant turn (a greeting the app showed) keeps that turn, after this stand-in user
# turn: dropping it would lose what the user's next message answers ("What's your name?").
OPENING_USER_TURN = "[conversation start]"

# ...and the last turn to be the user's too: current models reject an assistant turn at
# the end (a "prefill") with a 400. A history that ends with the model's own words (a
# reply cut off that the person wants continued) gets this stand-in user turn after it.
CONTINUE_USER_TURN = "[continue]"

_FINISH_REASONS: dict[str, str] = {
    "end_turn": FinishReason.STOP,
    "stop_sequence": FinishReason.STOP,
    "max_tokens": FinishReason.LENGTH,
    "model_context_window_exceeded": FinishReason.LENGTH,
    "refusal": FinishReason.REFUSAL,
    "tool_use": FinishReason.TOOL_CALLS,
}

# The HTTP status of each error type, for errors that arrive inside a 200 stream.
_STATUS_OF_ERROR_TYPE = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _map_messages(
    messages: Sequence[Message], system_prompt: str = ""
) -> tuple[str, list[dict[str, Any]]]:
    """OpenAI-shaped messages -> (system text, Anthropic turns), valid for the Messages
    API whatever the stored history looks like after failed, stopped or empty replies:

    * system messages go to the separate ``system`` field (the options' prompt first);
    * a turn of text stays text; a turn of content parts becomes content blocks
      (``_content_blocks``): text blocks, images as ``image`` blocks and PDFs as
      ``document`` blocks, both base64;
    * blank turns are dropped: the API rejects empty text ("all messages must have
      non-empty content");
    * consecutive turns of one role are merged, separated by a blank line, so that
      [user, user] (a reply that failed and was left out) or [user, empty reply, user]
      goes through with both questions: earlier API versions reject them ("roles must
      alternate"), current ones combine them the same way;
    * a leading assistant turn gets ``OPENING_USER_TURN`` before it ("first message must
      use the user role");
    * a trailing assistant turn gets ``CONTINUE_USER_TURN`` after it (current models
      reject a final assistant turn: "This model does not support assistant message
      prefill").
    """
    system, turns = split_system(messages, system_prompt)
    turns = merge_consecutive([t for t in turns if not is_blank(t["content"])])
    if turns and turns[0]["role"] == "assistant":
        turns.insert(0, {"role": "user", "content": OPENING_USER_TURN})
    if turns and turns[-1]["role"] == "assistant":
        turns.append({"role": "user", "content": CONTINUE_USER_TURN})
    return system, [
        {"role": turn["role"], "content": _content_blocks(turn["content"])} for turn in turns
    ]


def _content_blocks(content: Any) -> str | list[dict[str, Any]]:
    """A turn's content for the Messages API: text as it is; content parts as blocks in
    their order (blank text parts left out: the API rejects empty text blocks). A PDF's
    file name goes with it as the document's ``title``."""
    if isinstance(content, str):
        return content
    blocks: list[dict[str, Any]] = []
    for part in content:
        kind = part["type"]
        if kind == "text":
            if part["text"].strip():
                blocks.append({"type": "text", "text": part["text"]})
        elif kind == "image_url":
            image = image_source(part)
            source = {"type": "base64", "media_type": image.mime_type, "data": image.base64}
            blocks.append({"type": "image", "source": source})
        elif kind == "file":
            filename, pdf = pdf_source(part)
            blocks.append(
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": PDF_MIME_TYPE, "data": pdf.base64},
                    "title": filename,
                }
            )
    return blocks


def takes_thinking_budget(model: str, facts: Mapping[str, bool | None]) -> bool | None:
    """Whether ``model`` takes ``thinking: {"type": "enabled", "budget_tokens": N}``:
    what the model list said (``thinking.types.enabled``), else whether the table says
    it thinks (None: unknown)."""
    if facts.get("thinking_budget") is not None:
        return facts["thinking_budget"]
    return lookup(ANTHROPIC_MODELS, model).reasoning


def takes_effort(model: str, facts: Mapping[str, bool | None]) -> bool:
    """Whether ``model`` takes ``output_config.effort``: what the model list said
    (``capabilities.effort``), else ``capabilities.ANTHROPIC_EFFORT``."""
    if facts.get("effort") is not None:
        return bool(facts["effort"])
    return bool(ANTHROPIC_EFFORT.match(model.lower()))


def _build_request(
    messages: Sequence[Message],
    model: str,
    options: ChatOptions,
    facts: Mapping[str, bool | None] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``client.messages.create`` (without ``stream``).
    ``facts``: what the model list said about ``model`` (``BaseProvider.model_facts``).

    * ``options.temperature`` is never sent: API version 2026-10-21 has no sampling
      parameters (and with thinking on, Anthropic never allowed a temperature either);
    * ``options.thinking_budget`` (where the model takes one) turns extended thinking
      on, its summary shown: ``thinking={"type": "enabled", "budget_tokens": N,
      "display": "summarized"}``. Thinking counts against ``max_tokens``, which must
      exceed the budget: ``max_tokens`` becomes the budget plus the reply's own room
      (``options.max_tokens``, else ``DEFAULT_MAX_TOKENS``);
    * ``options.reasoning_effort`` (where the model takes one) is
      ``output_config={"effort": ...}``, "minimal" as "low";
    * ``options.stop`` is ``stop_sequences``; a reply that ends at one has the
      ``stop_reason`` "stop_sequence", a normal stop (``_FINISH_REASONS``).

    Raises BadRequestError when no turn has text, or for a stop sequence made only of
    whitespace ("\n"), which the API refuses ("each stop sequence must contain
    non-whitespace")."""
    facts = facts or {}
    system, turns = _map_messages(messages, options.system_prompt)
    if not turns:
        raise BadRequestError("there is no message to answer")
    request: dict[str, Any] = {
        "model": model,
        "max_tokens": options.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": turns,
    }
    if system:
        request["system"] = system
    budget = options.thinking_budget
    if budget is not None and takes_thinking_budget(model, facts) is not False:
        request["thinking"] = {"type": "enabled", "budget_tokens": budget, "display": "summarized"}
        request["max_tokens"] = budget + (options.max_tokens or DEFAULT_MAX_TOKENS)
    if options.reasoning_effort is not None and takes_effort(model, facts):
        request["output_config"] = {"effort": _EFFORTS[options.reasoning_effort]}
    if options.stop:
        if any(not sequence.strip() for sequence in options.stop):
            raise BadRequestError(
                "Claude takes no stop sequence made only of whitespace (such as a line break)"
            )
        request["stop_sequences"] = list(options.stop)
    return request


def _finish_reason(stop_reason: str | None) -> str:
    """Anthropic's ``stop_reason`` in the project's words (``FinishReason``); a reason
    with no equivalent (``pause_turn``) is kept as it is. ``None`` (``message_stop``
    without a ``message_delta`` reason) counts as a normal stop."""
    if not stop_reason:
        return FinishReason.STOP
    return _FINISH_REASONS.get(stop_reason, stop_reason)


def _finish(stop_reason: str | None, stop_details: Any = None) -> Finish:
    """The Finish event for a ``message_delta``'s ``stop_reason`` and ``stop_details``.
    ``detail`` says more when Anthropic does: the refusal's policy category and
    explanation ("cyber: ..."), or that the context window, not max_tokens, was the
    limit (``model_context_window_exceeded``)."""
    detail = ""
    if stop_reason == "model_context_window_exceeded":
        detail = stop_reason
    said = [
        str(value)
        for value in (
            getattr(stop_details, "category", None),
            getattr(stop_details, "explanation", None),
        )
        if value
    ]
    if said:
        detail = clean_upstream_message(": ".join(said))
    return Finish(_finish_reason(stop_reason), detail)


def _build_client(config: ClientConfig) -> Any:
    """An SDK client for ``config``, its own retries off (``BaseProvider.stream``
    retries, before the first token only) and no cap on concurrent streams (the SDK's
    default is 1,000 per client)."""
    import anthropic
    import httpx2

    return anthropic.AsyncAnthropic(
        api_key=config.api_key,
        base_url=config.base_url,
        timeout=config.timeout,
        max_retries=0,
        http_client=anthropic.DefaultAsyncHttpxClient(
            verify=shared_tls_context(),
            limits=httpx2.Limits(max_connections=None, max_keepalive_connections=100),
        ),
    )


async def _close_client(client: Any) -> None:
    await client.close()


# This module's SDK clients, one per event loop and configuration (see clients.py).
_CLIENTS: SdkClients[Any] = SdkClients("anthropic", build=_build_client, close=_close_client)


class AnthropicProvider(BaseProvider):
    """Claude models (Anthropic's Messages API), streamed."""

    label = "Anthropic"
    api_key_setting = "ANTHROPIC_API_KEY"
    default_base_url = "https://api.anthropic.com"
    required_packages = ("anthropic",)
    install_hint = "pip install anthropic"
    default_models = ("claude-sonnet-5-5", "claude-opus-5-5", "claude-haiku-5-5")
    # The API has no temperature any more (see the module docstring); the UI may hide it.
    supports_temperature: ClassVar[bool] = False

    def unsupported_options(self, model: str) -> dict[str, str]:
        """Claude takes no temperature through this API version (see the docstring); a
        thinking budget where the model takes manual extended thinking, an effort where
        it takes ``output_config.effort`` (the model list says, else the tables)."""
        from django.utils.translation import gettext

        facts = self.model_facts(model)
        unsupported = {"temperature": gettext("Claude models use their own temperature here")}
        if takes_thinking_budget(model, facts) is False:
            unsupported["thinking_budget"] = gettext("this model takes no thinking budget")
        if not takes_effort(model, facts):
            unsupported["reasoning_effort"] = gettext("this model takes no reasoning effort")
        return unsupported

    def capabilities(self, model: str) -> ModelCapabilities:
        """Images, PDFs and thinking as the model list says (``capabilities.image_input``,
        ``pdf_input``, ``thinking``), else as ``capabilities.ANTHROPIC_MODELS`` does."""
        return ModelCapabilities.from_facts(self.model_facts(model)).over(
            lookup(ANTHROPIC_MODELS, model)
        )

    async def _stream(
        self, messages: list[dict[str, Any]], model: str, options: ChatOptions
    ) -> AsyncIterator[StreamEvent]:
        """Text deltas, thinking as ReasoningDelta (signatures are not shown), then
        Usage (thinking tokens apart when the API breaks them out) and Finish once the
        API said why it stopped. A stream that ends without a ``stop_reason`` or
        ``message_stop`` yields no Finish (``BaseProvider.stream`` marks it cut off).
        Raises ProviderError (an ``error`` event, HTTP errors, transport errors)."""
        reasoning_set = options.thinking_budget is not None or options.reasoning_effort
        facts = await self.amodel_facts(model) if reasoning_set else {}
        request = _build_request(messages, model, options, facts)
        config = self._client_config()
        usage = _UsageCounter()
        stop_reason: str | None = None
        stop_details: Any = None
        stopped = False  # message_stop arrived
        received = False  # text or thinking arrived
        try:
            async with _CLIENTS.lease(config) as client:
                stream = await client.messages.create(**request, stream=True)
                # The context manager closes the HTTP response however we leave: end of
                # stream, error, or the consumer stopping (aclose / cancellation).
                async with stream:
                    async for event in stream:
                        kind = getattr(event, "type", None)
                        if kind == "message_start":
                            usage.add(getattr(event.message, "usage", None))
                        elif kind == "content_block_start":
                            # A block may open with text already in it; a redacted_thinking
                            # block has none to show (its data is encrypted).
                            piece = _block_text(getattr(event, "content_block", None))
                            if piece is not None:
                                received = True
                                yield piece
                        elif kind == "content_block_delta":
                            piece = _delta_text(getattr(event, "delta", None))
                            if piece is not None:
                                received = True
                                yield piece
                        elif kind == "message_delta":
                            delta = getattr(event, "delta", None)
                            stop_reason = getattr(delta, "stop_reason", None) or stop_reason
                            stop_details = getattr(delta, "stop_details", None) or stop_details
                            usage.add(getattr(event, "usage", None))
                        elif kind == "message_stop":
                            stopped = True
        except Exception as e:
            error = self._map_error(e, model=model)
            if stop_reason is None:
                raise error from e
            # The API had said why it stopped; only the end of the stream got lost.
            logger.info("%s: stream ended uncleanly after its stop (%s)", self.name, error.kind)
        finished = stopped or stop_reason is not None
        if usage.seen and (finished or received):
            yield usage.event()
        if finished:
            yield _finish(stop_reason, stop_details)

    async def fetch_models(self) -> list[str]:
        """Model ids from ``GET /v1/models`` (newest first), without retired ones. What
        each model's ``capabilities`` say (images, PDFs, thinking, effort) is remembered
        for ``capabilities`` and ``unsupported_options``."""
        config = self._client_config()
        try:
            async with _CLIENTS.lease(config) as client:
                models = [
                    model
                    async for model in client.models.list(limit=1000)
                    if getattr(model, "lifecycle", None) != "retired"
                ]
        except Exception as e:
            raise self._map_error(e) from e
        facts = {model.id: _listed_facts(model) for model in models}
        await self.remember_model_facts({k: v for k, v in facts.items() if v})
        return [model.id for model in models]

    def _map_error(self, e: BaseException, *, model: str = "") -> ProviderError:
        """The ProviderError for an SDK, transport or parsing exception. Anthropic's own
        part: an HTTP error or an ``error`` event by its status (an event's type gives the
        status it would have had: ``overloaded_error`` is 529, unavailable), a credit
        problem (402, ``billing_error``) as permission, a ``timeout_error`` as timeout,
        an unknown model named; anything unreadable as unavailable. Timeouts and
        connection faults are ``transport.transport_error``'s."""
        import anthropic

        if isinstance(e, ProviderError):
            return e
        endpoint = self._endpoint()
        if isinstance(e, anthropic.APIStatusError):
            status = e.status_code
            error_type = e.type if isinstance(e.type, str) else None
            if status < 400:  # an ``error`` event inside a 200 stream
                status = _STATUS_OF_ERROR_TYPE.get(error_type or "", 529)
            message = e.api_message if isinstance(e.api_message, str) else ""
            if status == 402 or error_type == "billing_error":
                return PermissionDeniedError(
                    endpoint.redact(clean_upstream_message(message))
                    or "the account has no credit left",
                    provider=self.label,
                    status_code=status,
                )
            if error_type == "timeout_error":
                return ProviderTimeoutError(provider=self.label, status_code=status)
            error = status_error(status, message, endpoint, headers=e.response.headers)
            if isinstance(error, ModelNotFoundError) and model:
                error = ModelNotFoundError(
                    f"unknown model {model!r}", provider=self.label, status_code=status
                )
            return error
        transport = transport_error(
            e,
            endpoint,
            timeouts=(anthropic.APITimeoutError,),
            connections=(anthropic.APIConnectionError,),
        )
        if transport is not None:
            return transport
        if isinstance(e, (ValueError, anthropic.APIResponseValidationError)):
            # An event that is not JSON, or JSON the SDK's models reject.
            return UnavailableError("the service sent a malformed reply", provider=self.label)
        logger.warning("%s: unexpected error", self.name, exc_info=e)
        return UnavailableError(f"unexpected error ({type(e).__name__})", provider=self.label)


def _listed_facts(model: Any) -> dict[str, bool | None]:
    """What a ``ModelInfo`` of the model list says about the model (empty when it has
    no ``capabilities``): images, PDFs, thinking, a manual thinking budget, effort."""
    capabilities = getattr(model, "capabilities", None)
    if capabilities is None:
        return {}

    def supported(*path: str) -> bool | None:
        value: Any = capabilities
        for name in path:
            value = getattr(value, name, None)
        return value if isinstance(value, bool) else None

    thinking = supported("thinking", "supported")
    enabled = supported("thinking", "types", "enabled", "supported")
    return {
        "images": supported("image_input", "supported"),
        "pdf": supported("pdf_input", "supported"),
        "reasoning": thinking,
        "thinking_budget": None if thinking is None else bool(thinking and enabled),
        "effort": supported("effort", "supported"),
    }


def _block_text(block: Any) -> TextDelta | ReasoningDelta | None:
    """The text a ``content_block_start`` opens with, if any (usually none)."""
    kind = getattr(block, "type", None)
    if kind == "text" and getattr(block, "text", None):
        return TextDelta(block.text)
    if kind == "thinking" and getattr(block, "thinking", None):
        return ReasoningDelta(block.thinking)
    return None


def _delta_text(delta: Any) -> TextDelta | ReasoningDelta | None:
    """The reply text (``text_delta``) or reasoning (``thinking_delta``) in a block delta;
    None for the rest (signatures, tool input, citations), which people do not read."""
    kind = getattr(delta, "type", None)
    if kind == "text_delta" and getattr(delta, "text", None):
        return TextDelta(delta.text)
    if kind == "thinking_delta" and getattr(delta, "thinking", None):
        return ReasoningDelta(delta.thinking)
    return None


class _UsageCounter:
    """Usage from ``message_start`` and the cumulative ``message_delta`` counts: input
    including cached tokens (reported apart), output including thinking, and the
    thinking part when the API breaks it out (``output_tokens_details``)."""

    def __init__(self) -> None:
        self.seen = False
        self.input_tokens = 0
        self.output_tokens = 0
        self.reasoning_tokens: int | None = None

    def add(self, usage: Any) -> None:
        if usage is None:
            return
        self.seen = True
        if getattr(usage, "input_tokens", None) is not None:
            self.input_tokens = sum(
                getattr(usage, name, None) or 0
                for name in (
                    "input_tokens",
                    "cache_creation_input_tokens",
                    "cache_read_input_tokens",
                )
            )
        self.output_tokens = getattr(usage, "output_tokens", None) or self.output_tokens
        details = getattr(usage, "output_tokens_details", None)
        thinking = getattr(details, "thinking_tokens", None)
        if isinstance(thinking, int):
            self.reasoning_tokens = thinking

    def event(self) -> Usage:
        return Usage(self.input_tokens, self.output_tokens, self.reasoning_tokens)
