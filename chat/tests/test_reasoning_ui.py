"""Reasoning as people expect it (issue 11): a collapsed block above the answer that says
how long the model thought ("Thought for 12 s"), the same after a reload; reasoning
tokens counted apart in the reply's meta line; reasoning never sent back to a model; and
the reasoning settings of a conversation (effort, thinking budget): saved, refused with
a clear message, or disabled for a model that does not take them."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from chat.forms import ConversationSettingsForm
from chat.models import Conversation, Message
from chat.templatetags.chat_reasoning import thought_for
from chat.tests.conftest import StartReply
from chat.tests.fakes.fake_provider import Script

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def stored_reply(conversation: Conversation, **fields: Any) -> Message:
    """A question and its saved reply (``fields`` on the reply)."""
    question = Message.objects.create(
        conversation=conversation, role="user", content="Why is the sky blue?"
    )
    fields = {
        "content": "Rayleigh scattering.",
        "content_html": "<p>Rayleigh scattering.</p>",
        "status": "complete",
        "finish_reason": "stop",
        "provider": "fake",
        "model": "fake-small",
        **fields,
    }
    return Message.objects.create(
        conversation=conversation, parent=question, role="assistant", **fields
    )


def reasoning_block(html: str, reply: Message) -> str:
    """The <details> reasoning block of ``reply`` in the page."""
    article = html[html.index(f'data-message-id="{reply.pk}"') :]
    return article[article.index("<details") : article.index("</details>") + 10]


def summary_of(block: str) -> str:
    return re.search(r"<summary[^>]*>(.*?)</summary>", block, re.S).group(1)  # type: ignore[union-attr]


# --- The block's summary -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reasoning_ms", "label"),
    [
        (None, "Reasoning"),
        (0, "Thought for a moment"),
        (999, "Thought for a moment"),
        (1000, "Thought for 1 s"),
        (12_000, "Thought for 12 s"),
        (12_499, "Thought for 12 s"),
        (59_400, "Thought for 59 s"),
        (60_000, "Thought for 1 min"),
        (125_000, "Thought for 2 min 5 s"),
    ],
)
def test_thought_for_words_the_thinking_time(reasoning_ms: int | None, label: str) -> None:
    assert thought_for(reasoning_ms) == label


def test_a_saved_reply_says_how_long_the_model_thought_collapsed(
    signed_in: Client, conversation: Conversation
) -> None:
    reply = stored_reply(conversation, reasoning="Light scatters.", reasoning_ms=12_000)
    html = signed_in.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    block = reasoning_block(html, reply)
    assert "Thought for 12 s" in summary_of(block)
    assert " open" not in block.split(">", 1)[0]  # collapsed
    assert "hidden" not in block.split(">", 1)[0]
    assert 'data-reasoning-ms="12000"' in block and "Light scatters." in block


def test_a_reply_saved_before_the_time_was_measured_says_reasoning(
    signed_in: Client, conversation: Conversation
) -> None:
    reply = stored_reply(conversation, reasoning="Light scatters.")
    html = signed_in.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert ">Reasoning<" in summary_of(reasoning_block(html, reply))


def test_a_reply_without_reasoning_shows_no_block(
    signed_in: Client, conversation: Conversation
) -> None:
    reply = stored_reply(conversation)
    html = signed_in.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert "hidden" in reasoning_block(html, reply).split(">", 1)[0]


def test_a_reply_still_thinking_says_thinking(
    signed_in: Client, conversation: Conversation
) -> None:
    reply = stored_reply(conversation, status="streaming", content="", content_html="")
    reply.reasoning = "Light…"
    reply.save()
    html = signed_in.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert "Thinking…" in summary_of(reasoning_block(html, reply))


def test_the_page_carries_the_summary_labels_for_its_script(signed_in: Client) -> None:
    """The blank reply the script copies holds the translated labels of the live summary
    (saved replies do not repeat them)."""
    html = signed_in.get(reverse("chat:index")).content.decode()
    template = html[html.index('<template id="tpl-reply">') :]
    template = template[: template.index("</article>")]
    for attribute, label in (
        ("data-label-thinking", "Thinking…"),
        ("data-label-seconds", "Thought for {seconds} s"),
        ("data-label-minutes-seconds", "Thought for {minutes} min {seconds} s"),
        ("data-label-moment", "Thought for a moment"),
        ("data-tokens-reasoning", "{input} in · {output} out tokens ({reasoning} reasoning)"),
    ):
        assert f'{attribute}="{label}"' in template


# --- Usage -------------------------------------------------------------------------------------


def test_the_meta_line_counts_reasoning_tokens_apart(
    signed_in: Client, conversation: Conversation
) -> None:
    stored_reply(
        conversation,
        reasoning="Light scatters.",
        input_tokens=120,
        output_tokens=860,
        reasoning_tokens=700,
    )
    stored_reply(conversation, input_tokens=12, output_tokens=30)
    html = signed_in.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert "120 in · 860 out tokens (700 reasoning)" in html
    assert "12 in · 30 out tokens<" in html  # none reported: nothing said


# --- Never sent back ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_reasoning_is_never_sent_back_as_context(
    start_reply: StartReply, conversation: Conversation, fake_provider: type
) -> None:
    run = await start_reply(
        conversation, Script(reasoning=["SECRET THOUGHT"], chunks=["The answer."])
    )
    await run.done()
    run = await start_reply(conversation, Script(), content="And then?")
    await run.done()
    sent = fake_provider.calls[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "assistant"] == ["The answer."]
    assert "SECRET THOUGHT" not in repr(sent)


# --- Settings ------------------------------------------------------------------------------------


def save_settings(signed_in: Client, conversation: Conversation, **fields: str) -> Any:
    data = {"system_prompt": "", "temperature": "", "max_tokens": "", **fields}
    return signed_in.post(
        reverse("chat:settings", args=[conversation.pk]),
        data,
        headers={"X-Requested-With": "fetch", "Accept": "application/json"},
    )


def test_reasoning_settings_are_saved(signed_in: Client, conversation: Conversation) -> None:
    response = save_settings(
        signed_in, conversation, reasoning_effort="high", thinking_budget="4096"
    )
    assert response.status_code == 200
    conversation.refresh_from_db()
    assert (conversation.reasoning_effort, conversation.thinking_budget) == ("high", 4096)

    save_settings(signed_in, conversation, reasoning_effort="", thinking_budget="")
    conversation.refresh_from_db()
    assert (conversation.reasoning_effort, conversation.thinking_budget) == (None, None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"reasoning_effort": "extreme"}, "Reasoning effort: Choose the model's default"),
        ({"thinking_budget": "100"}, "A thinking budget is at least 1024 tokens"),
        ({"thinking_budget": "500000"}, "A thinking budget is at most 128000 tokens"),
        ({"thinking_budget": "lots"}, "Enter a whole number of tokens"),
    ],
)
def test_reasoning_settings_out_of_range_are_refused_with_a_clear_message(
    signed_in: Client, conversation: Conversation, fields: dict[str, str], message: str
) -> None:
    response = save_settings(signed_in, conversation, **fields)
    assert response.status_code == 400
    assert message in response.json()["error"]
    conversation.refresh_from_db()
    assert (conversation.reasoning_effort, conversation.thinking_budget) == (None, None)


def test_the_settings_dialog_offers_the_reasoning_settings(
    signed_in: Client, conversation: Conversation
) -> None:
    html = signed_in.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    dialog = html[html.index('<dialog id="settings-dialog"') :]
    dialog = dialog[: dialog.index("</dialog>")]
    assert "Reasoning effort" in dialog and 'name="reasoning_effort"' in dialog
    for value in ("minimal", "low", "medium", "high"):
        assert f'value="{value}"' in dialog
    assert "Thinking budget (tokens)" in dialog and 'name="thinking_budget"' in dialog
    assert 'min="1024"' in dialog and 'max="128000"' in dialog


def test_the_settings_form_holds_the_conversations_reasoning_settings(
    conversation: Conversation,
) -> None:
    conversation.reasoning_effort, conversation.thinking_budget = "low", 2048
    form = ConversationSettingsForm.for_conversation(conversation)
    assert form["reasoning_effort"].value() == "low"
    assert form["thinking_budget"].value() == 2048
    assert ConversationSettingsForm.for_conversation(None)["thinking_budget"].value() is None
