"""Conversation titles written by a model, in the background, after the first reply.

Until then (and whenever this fails, or CHAT_TITLE_MODEL is ``off``) the title is the
first line of the first message (``conversations.title_from_text``). CHAT_TITLE_MODEL
chooses the model as ``provider/model`` (for example ``openai/gpt-4o-mini``); empty
means the conversation's own model (but not the bundled local model, too small to sum
up a conversation). A title the person typed is never replaced.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import TYPE_CHECKING, Any

from django.conf import settings

from ..dbtext import storable_text
from ..models import Conversation
from ..providers import (
    PROVIDER_REGISTRY,
    BaseProvider,
    ChatOptions,
    LocalProvider,
    TextDelta,
    get_provider,
)
from .conversations import title_line, title_shorten
from .persistence import db_step

if TYPE_CHECKING:
    from .replies import PreparedReply

logger = logging.getLogger("chat.services")

TITLE_TIMEOUT_SECONDS = 30.0
TITLE_MAX_TOKENS = 24
TITLE_PROMPT = (
    "Write a title of at most six words for the conversation below, in the language of "
    "the conversation. Answer with the title only: no quotes, no final period."
)
# How much of the question and of the answer the title model reads (characters).
TITLE_INPUT_CHARS = 1500


def title_model(*, provider: str, model: str) -> tuple[str, str] | None:
    """(provider, model) that writes titles for a conversation on ``provider``/
    ``model``, from CHAT_TITLE_MODEL; None when titles by a model are off."""
    choice = settings.CHAT_TITLE_MODEL.strip()
    if choice.lower() in ("off", "none", "false", "0"):
        return None
    if not choice:
        # The bundled local model (135M parameters) repeats the start of its answer
        # rather than summing up: its chats keep the first line unless a title model
        # is set.
        if issubclass(PROVIDER_REGISTRY.get(provider, BaseProvider), LocalProvider):
            return None
        return provider, model
    name, _, chosen = choice.partition("/")
    return (name, chosen) if chosen else (name, get_provider(name).default_model())


def title_clean(text: str) -> str:
    """The model's answer as a title: its first line as plain text (``title_line``),
    without a "Title:" label, quotes or a final period, at most TITLE_MAX_CHARS
    characters. Empty when nothing usable is left."""
    text = re.sub(r"(?is)<think>.*?</think>", "", storable_text(text))
    line = title_line(text)
    line = re.sub(r"^(title|заголовок)\s*:\s*", "", line, flags=re.IGNORECASE)
    line = line.strip(" \t*_\"'«»“”„").rstrip(".").strip()
    return title_shorten(" ".join(line.split()))


async def title_generate(*, provider: str, model: str, question: str, reply: str) -> str:
    """Ask ``provider``/``model`` for a short title of a conversation that starts
    with ``question`` and ``reply``. Returns the cleaned title ("" when the model gave
    nothing usable). Raises the provider's errors and TimeoutError (after
    TITLE_TIMEOUT_SECONDS)."""
    history = [
        {
            "role": "user",
            "content": (
                f"{TITLE_PROMPT}\n\nUser: {question[:TITLE_INPUT_CHARS]}\n\n"
                f"Assistant: {reply[:TITLE_INPUT_CHARS]}"
            ),
        }
    ]
    options = ChatOptions(max_tokens=TITLE_MAX_TOKENS)
    parts: list[str] = []
    async with asyncio.timeout(TITLE_TIMEOUT_SECONDS):
        async for event in get_provider(provider).stream(history, model, options):
            if type(event) is TextDelta:
                parts.append(event.text)
    return title_clean("".join(parts))


def _text_of(content: str | list[dict[str, Any]]) -> str:
    """The text of a history message's ``content``: the string, or the text parts of a
    list of content parts (a message with attachments), without the files."""
    if isinstance(content, str):
        return content
    return "\n".join(
        part.get("text", "")
        for part in content
        if isinstance(part, dict) and part.get("type") == "text"
    )


def _title_save(conversation_id: int, fallback: str, title: str) -> bool:
    # Only while the title is still the automatic one: a rename wins.
    return bool(Conversation.objects.filter(pk=conversation_id, title=fallback).update(title=title))


async def title_write(*, prepared: PreparedReply, reply: str) -> str:
    """Give the conversation ``prepared`` created a title written by a model, in place
    of its first-line title, unless the person renamed it meanwhile. Returns the new
    title, or "" when it kept the first line (titles off, the model failed or said
    nothing usable). Never raises: a failure is logged and the first line stays."""
    question = next(
        (_text_of(m["content"]) for m in reversed(prepared.history) if m["role"] == "user"), ""
    )
    try:
        chosen = title_model(provider=prepared.provider, model=prepared.model)
        if chosen is None:
            return ""
        title = await title_generate(
            provider=chosen[0], model=chosen[1], question=question, reply=reply
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        logger.warning(
            "conversation %s: the title model failed (%s), the first line stays",
            prepared.conversation_id,
            type(exc).__name__,
        )
        return ""
    if not title:
        return ""
    try:
        saved = await db_step(_title_save)(
            prepared.conversation_id, prepared.created_conversation_title, title
        )
    except Exception:
        logger.warning("conversation %s: saving its title failed", prepared.conversation_id)
        return ""
    return title if saved else ""
