"""Folders (projects), pins and the archive (issue 13): folders with their own system
prompt and model for new chats, pinned conversations first, archived ones in their own
view, and the conversation list filtered by folder. Services, then the views as the page
uses them (JSON for its script, a redirect for a plain form)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from access.models import ModelAccessRule
from chat import selectors
from chat.models import Conversation, Folder
from chat.services import folders as folder_services
from chat.tests.test_views import stream_body

pytestmark = pytest.mark.django_db

FETCH = {"HTTP_X_REQUESTED_WITH": "fetch"}


@pytest.fixture
def alice() -> User:
    return User.objects.create_user("alice", password="pw-alice-123")


@pytest.fixture
def bob() -> User:
    return User.objects.create_user("bob", password="pw-bob-123")


@pytest.fixture
def alice_client(alice: User) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def chat(owner: User, title: str, *, age_minutes: int = 0, **fields: object) -> Conversation:
    """A conversation whose last message was ``age_minutes`` ago."""
    return Conversation.objects.create(
        owner=owner,
        title=title,
        provider="fake",
        model="fake-small",
        updated_at=timezone.now() - timedelta(minutes=age_minutes),
        **fields,
    )


def sidebar_titles(html: str) -> list[str]:
    """The titles of the conversation list, in the order shown (pinned group first)."""
    nav = html.split('id="conversation-list"', 1)[1].split("</nav>", 1)[0]
    return re.findall(r'data-title="([^"]*)"', nav)


def pinned_titles(html: str) -> list[str]:
    group = re.search(r'id="pinned-list".*?</ul>', html, re.S)
    return re.findall(r'data-title="([^"]*)"', group.group(0)) if group else []


# --- Services ---------------------------------------------------------------------------


def test_folder_names_are_unique_per_person_whatever_their_letter_case(
    alice: User, bob: User
) -> None:
    folder_services.folder_create(owner=alice, name="École")
    with pytest.raises(ValidationError, match="already have a folder named “école”"):
        folder_services.folder_create(owner=alice, name="  école ")
    folder_services.folder_create(owner=bob, name="École")  # another person's is fine
    assert Folder.objects.count() == 2


def test_a_blank_or_overlong_folder_name_is_refused_with_the_reason(alice: User) -> None:
    with pytest.raises(ValidationError, match="name cannot be empty"):
        folder_services.folder_create(owner=alice, name="   ")
    with pytest.raises(ValidationError, match="at most 100 characters"):
        folder_services.folder_create(owner=alice, name="x" * 101)
    assert not Folder.objects.exists()


def test_renaming_a_folder_to_another_of_its_names_is_refused(alice: User) -> None:
    work = folder_services.folder_create(owner=alice, name="Work")
    folder_services.folder_create(owner=alice, name="Home")
    with pytest.raises(ValidationError, match="already have a folder named “HOME”"):
        folder_services.folder_update(
            folder=work, name="HOME", system_prompt="", provider="", model=""
        )
    work.refresh_from_db()
    assert work.name == "Work"
    # Its own name in another case is a rename, not a clash.
    folder_services.folder_update(folder=work, name="WORK", system_prompt="", provider="", model="")
    assert Folder.objects.get(pk=work.pk).name == "WORK"


def test_deleting_a_folder_keeps_its_conversations_outside_any_folder(
    alice: User, fake_provider: type
) -> None:
    folder = folder_services.folder_create(owner=alice, name="Trip")
    inside = chat(alice, "Flights", folder=folder)
    moved = folder_services.folder_delete(folder=folder)
    assert moved == 1
    inside.refresh_from_db()
    assert inside.folder is None and inside.title == "Flights"


def test_a_folder_model_must_be_known(alice: User, fake_provider: type) -> None:
    with pytest.raises(ValidationError, match="Unknown model “fake-huge”"):
        folder_services.folder_create(owner=alice, name="X", provider="fake", model="fake-huge")
    with pytest.raises(ValidationError, match="Unknown provider"):
        folder_services.folder_create(owner=alice, name="X", provider="nope", model="m")


@pytest.fixture
def limited(fake_provider: type) -> User:
    """A person whose group may use fake-small only."""
    user = User.objects.create_user("lim", password="pw-lim-12345")
    group = Group.objects.create(name="interns")
    group.user_set.add(user)
    ModelAccessRule.objects.create(group=group, provider="fake", model_pattern="fake-small")
    return user


def test_a_folder_model_the_person_may_not_use_is_refused(limited: User) -> None:
    with pytest.raises(ValidationError, match="may not use fake-large"):
        folder_services.folder_create(
            owner=limited, name="Big", provider="fake", model="fake-large"
        )
    assert not Folder.objects.exists()


def test_pinning_keeps_the_first_pin_time_and_unpinning_clears_it(alice: User) -> None:
    conversation = chat(alice, "A")
    folder_services.conversation_pin(conversation=conversation, pinned=True)
    first = Conversation.objects.get(pk=conversation.pk).pinned_at
    assert first is not None
    folder_services.conversation_pin(conversation=conversation, pinned=True)
    assert Conversation.objects.get(pk=conversation.pk).pinned_at == first
    folder_services.conversation_pin(conversation=conversation, pinned=False)
    assert Conversation.objects.get(pk=conversation.pk).pinned_at is None


def test_a_conversation_cannot_go_into_another_persons_folder(alice: User, bob: User) -> None:
    theirs = folder_services.folder_create(owner=bob, name="Bob's")
    conversation = chat(alice, "Mine")
    with pytest.raises(ValidationError, match="No such folder"):
        folder_services.conversation_move(conversation=conversation, folder=theirs)
    assert Conversation.objects.get(pk=conversation.pk).folder_id is None


# --- The conversation list -------------------------------------------------------------


def test_pinned_conversations_lead_the_list_the_latest_pinned_first(
    alice: User, alice_client: Client
) -> None:
    old = chat(alice, "Old", age_minutes=60)
    older = chat(alice, "Older", age_minutes=90)
    chat(alice, "Newest", age_minutes=1)
    folder_services.conversation_pin(conversation=older, pinned=True)
    folder_services.conversation_pin(conversation=old, pinned=True)
    html = alice_client.get(reverse("chat:index")).content.decode()
    assert sidebar_titles(html) == ["Old", "Older", "Newest"]
    assert pinned_titles(html) == ["Old", "Older"]
    assert 'id="pinned-section" hidden' not in html


def test_without_pins_the_pinned_group_is_hidden(alice: User, alice_client: Client) -> None:
    chat(alice, "Only")
    html = alice_client.get(reverse("chat:index")).content.decode()
    assert 'id="pinned-section" hidden' in html
    assert sidebar_titles(html) == ["Only"]


def test_archiving_hides_a_conversation_and_the_archive_lists_it_until_unarchived(
    alice: User, alice_client: Client
) -> None:
    kept = chat(alice, "Kept")
    old = chat(alice, "Done with", age_minutes=5)
    response = alice_client.post(reverse("chat:archive", args=[old.pk]), **FETCH)
    assert response.json() == {
        "id": old.pk,
        "folder_id": None,
        "pinned": False,
        "archived": True,
        "notice": "Archived.",
    }
    assert sidebar_titles(alice_client.get(reverse("chat:index")).content.decode()) == ["Kept"]
    archive = alice_client.get(reverse("chat:index"), {"folder": "archived"}).content.decode()
    assert sidebar_titles(archive) == ["Done with"]
    assert f'href="/c/{old.pk}/?folder=archived"' in archive  # opening it keeps the view
    # Still reachable by its address.
    assert alice_client.get(reverse("chat:conversation", args=[old.pk])).status_code == 200

    alice_client.post(reverse("chat:unarchive", args=[old.pk]), **FETCH)
    html = alice_client.get(reverse("chat:index")).content.decode()
    assert sidebar_titles(html) == ["Kept", "Done with"]
    assert kept.pk != old.pk


def test_the_filters_show_button_is_only_for_pages_without_the_script(
    alice: User, alice_client: Client
) -> None:
    # It showed on the chat page, where picking a folder shows it at once.
    html = alice_client.get(reverse("chat:index")).content.decode()
    assert re.search(r"<noscript><button type=\"submit\"[^>]*>Show</button></noscript>", html)
    assert html.count(">Show</button>") == 1


@pytest.mark.parametrize(
    ("query", "text"),
    [
        ({"folder": "archived"}, "No archived conversations."),
        ({}, "No conversations yet."),
        ({"q": "nothing"}, "No conversation matches."),
    ],
)
def test_the_list_carries_its_empty_line_for_the_script(
    alice: User, alice_client: Client, query: dict[str, str], text: str
) -> None:
    """The script shows the server's empty-list line when the last conversation leaves
    the list shown (Unarchive in the archive used to leave it blank)."""
    archived = chat(alice, "Archived one")
    folder_services.conversation_archive(conversation=archived, archived=True)
    html = alice_client.get(reverse("chat:index"), query).content.decode()
    assert f'data-empty-text="{text}"' in html
    assert 'data-empty-pinned-text="No other conversations."' in html


def test_the_folder_filter_lists_that_folders_conversations_only(
    alice: User, alice_client: Client
) -> None:
    work = folder_services.folder_create(owner=alice, name="Work")
    report = chat(alice, "Report", folder=work)
    chat(alice, "Holiday")
    pinned_elsewhere = chat(alice, "Pinned elsewhere")
    folder_services.conversation_pin(conversation=pinned_elsewhere, pinned=True)

    html = alice_client.get(reverse("chat:index"), {"folder": work.pk}).content.decode()
    assert sidebar_titles(html) == ["Report"]
    assert re.search(rf'<option value="{work.pk}"\s+selected>Work</option>', html)
    assert f'href="/c/{report.pk}/?folder={work.pk}"' in html  # the filter stays
    assert f'href="/?folder={work.pk}"' in html  # so does a new chat
    everything = alice_client.get(reverse("chat:index")).content.decode()
    assert sorted(sidebar_titles(everything)) == ["Holiday", "Pinned elsewhere", "Report"]


def test_a_search_keeps_to_the_folder_shown(alice: User, alice_client: Client) -> None:
    work = folder_services.folder_create(owner=alice, name="Work")
    chat(alice, "Budget at work", folder=work)
    chat(alice, "Budget at home")
    html = alice_client.get(reverse("chat:index"), {"q": "budget", "folder": work.pk})
    assert sidebar_titles(html.content.decode()) == ["Budget at work"]


def test_another_persons_folder_as_filter_is_404(bob: User, alice_client: Client) -> None:
    theirs = folder_services.folder_create(owner=bob, name="Private")
    assert alice_client.get(reverse("chat:index"), {"folder": theirs.pk}).status_code == 404
    assert alice_client.get(reverse("chat:index"), {"folder": "nope"}).status_code == 404


def test_the_list_with_folders_and_pins_costs_the_same_queries(
    alice: User, alice_client: Client
) -> None:
    def queries(**params: object) -> int:
        alice_client.get(reverse("chat:index"), params)  # warm: what the site caches
        with CaptureQueriesContext(connection) as ctx:
            assert alice_client.get(reverse("chat:index"), params).status_code == 200
        return len(ctx.captured_queries)

    chat(alice, "one")
    few = queries()
    for i in range(5):
        folder = folder_services.folder_create(owner=alice, name=f"F{i}")
        for j in range(8):
            conversation = chat(alice, f"c{i}-{j}", folder=folder, age_minutes=i * 10 + j)
            if j % 3 == 0:
                folder_services.conversation_pin(conversation=conversation, pinned=True)
    assert queries() == few
    assert queries(folder=folder.pk) == few


def test_a_folder_made_in_another_tab_can_be_shown_at_once(
    alice: User, alice_client: Client
) -> None:
    alice_client.get(reverse("chat:index"))  # the folder list is cached now
    # Saved without the signal that clears the cached list (as by another worker
    # without a shared cache): the cached list lacks it.
    Folder.objects.bulk_create([Folder(owner=alice, name="Fresh", name_key="fresh")])
    fresh = Folder.objects.get(name="Fresh")
    html = alice_client.get(reverse("chat:index"), {"folder": fresh.pk}).content.decode()
    assert "This chat will be in the folder “Fresh”." in html


# --- New chats in a folder --------------------------------------------------------------


def test_a_new_chat_in_a_folder_starts_with_its_system_prompt_and_model(
    alice: User, alice_client: Client, fake_provider: type
) -> None:
    chat(alice, "Earlier")  # on fake-small: the model used last
    folder = folder_services.folder_create(
        owner=alice,
        name="Pirates",
        system_prompt="Talk like a pirate.",
        provider="fake",
        model="fake-large",
    )
    html = alice_client.get(reverse("chat:index"), {"folder": folder.pk}).content.decode()
    assert re.search(r'<option value="fake::fake-large"[^>]*\sselected>', html)
    assert re.search(
        r'<textarea name="system_prompt"[^>]*>\s*Talk like a pirate\.</textarea>', html
    )
    assert f'data-new-reply-url="/c/new/reply/?folder={folder.pk}"' in html
    assert "This chat will be in the folder “Pirates”." in html
    # Outside the folder: the model used last, no system prompt.
    html = alice_client.get(reverse("chat:index")).content.decode()
    assert re.search(r'<option value="fake::fake-small"[^>]*\sselected>', html)
    assert "Talk like a pirate." not in html.split('id="settings-dialog"')[1].split("</dialog>")[0]


def test_a_folder_model_forbidden_later_falls_back_to_the_usual_model_and_says_why(
    limited: User,
) -> None:
    folder = Folder.objects.create(owner=limited, name="Big", provider="fake", model="fake-large")
    client = Client()
    client.force_login(limited)
    html = client.get(reverse("chat:index"), {"folder": folder.pk}).content.decode()
    assert 'value="fake::fake-large"' not in html
    assert re.search(r'<option value="fake::fake-small"[^>]*\sselected>', html)
    assert "starts chats on fake-large, which you may not use" in html


@pytest.mark.django_db(transaction=True)
async def test_the_first_message_of_a_chat_in_a_folder_puts_it_there_with_the_folders_prompt(
    alice: User, fake_provider: type
) -> None:
    folder = await Folder.objects.acreate(
        owner=alice,
        name="Pirates",
        system_prompt="Talk like a pirate.",
        provider="fake",
        model="fake-large",
    )
    client = AsyncClient()
    await client.aforce_login(alice)
    url = reverse("chat:reply_new") + f"?folder={folder.pk}"
    # The page sends the model chosen in the menu; the settings dialog was not opened.
    response = await client.post(url, {"content": "Hi", "provider": "fake", "model": "fake-small"})
    await stream_body(response)
    conversation = await Conversation.objects.aget(owner=alice)
    assert conversation.folder_id == folder.pk
    assert conversation.system_prompt == "Talk like a pirate."
    assert fake_provider.calls[-1]["options"].system_prompt == "Talk like a pirate."
    assert response["X-Conversation-Url"] == f"/c/{conversation.pk}/?folder={folder.pk}"

    # Without a model in the request, the folder's; a prompt cleared in the dialog stays so.
    response = await client.post(url, {"content": "Hi", "system_prompt": ""})
    await stream_body(response)
    second = await Conversation.objects.exclude(pk=conversation.pk).aget(owner=alice)
    assert (second.folder_id, second.model, second.system_prompt) == (folder.pk, "fake-large", "")


@pytest.mark.django_db(transaction=True)
async def test_a_first_message_into_a_folder_deleted_meanwhile_is_refused_unsaved(
    alice: User, bob: User, fake_provider: type
) -> None:
    theirs = await Folder.objects.acreate(owner=bob, name="Bob's")
    client = AsyncClient()
    await client.aforce_login(alice)
    url = reverse("chat:reply_new") + f"?folder={theirs.pk}"
    response = await client.post(url, {"content": "Hi", "provider": "fake", "model": "fake-small"})
    assert response.status_code == 404
    assert "This folder no longer exists" in response.json()["error"]
    assert not await Conversation.objects.aexists()


# --- Views ------------------------------------------------------------------------------


def test_creating_a_folder_answers_where_to_see_it_and_refuses_a_taken_name(
    alice: User, alice_client: Client, fake_provider: type
) -> None:
    fields = {"name": "Work", "system_prompt": "Be formal.", "model_choice": "fake::fake-small"}
    response = alice_client.post(reverse("chat:folder_create"), fields, **FETCH)
    assert response.status_code == 201
    folder = Folder.objects.get(owner=alice)
    assert response.json() == {
        "id": folder.pk,
        "name": "Work",
        "url": f"/?folder={folder.pk}",
        "created": True,
    }
    assert (folder.system_prompt, folder.provider, folder.model) == (
        "Be formal.",
        "fake",
        "fake-small",
    )
    again = alice_client.post(reverse("chat:folder_create"), {"name": "work"}, **FETCH)
    assert again.status_code == 400
    assert again.json() == {"error": "You already have a folder named “work”."}
    bad = alice_client.post(
        reverse("chat:folder_create"), {"name": "X", "model_choice": "fake-small"}, **FETCH
    )
    assert bad.json()["error"] == "Choose a model from the menu, or no default model."
    assert Folder.objects.count() == 1


def test_a_plain_form_post_creates_the_folder_and_shows_it(alice_client: Client) -> None:
    response = alice_client.post(reverse("chat:folder_create"), {"name": "Notes"})
    folder = Folder.objects.get(name="Notes")
    assert response.status_code == 302 and response["Location"] == f"/?folder={folder.pk}"
    page = alice_client.get(response["Location"]).content.decode()
    assert "Folder “Notes” created." in page


def test_editing_a_folder_saves_its_name_prompt_and_model(
    alice: User, alice_client: Client, fake_provider: type
) -> None:
    folder = folder_services.folder_create(owner=alice, name="Draft")
    response = alice_client.post(
        reverse("chat:folder_update", args=[folder.pk]),
        {"name": "Final", "system_prompt": "Short answers.", "model_choice": "fake::fake-large"},
        **FETCH,
    )
    assert response.status_code == 200
    folder.refresh_from_db()
    assert (folder.name, folder.system_prompt, folder.model_choice) == (
        "Final",
        "Short answers.",
        "fake::fake-large",
    )


def test_deleting_a_folder_from_the_page_keeps_its_conversations(
    alice: User, alice_client: Client
) -> None:
    folder = folder_services.folder_create(owner=alice, name="Old project")
    conversation = chat(alice, "Notes", folder=folder)
    response = alice_client.post(reverse("chat:folder_delete", args=[folder.pk]), **FETCH)
    assert response.json()["moved"] == 1 and response.json()["url"] == "/"
    assert not Folder.objects.exists()
    assert Conversation.objects.get(pk=conversation.pk).folder_id is None
    assert sidebar_titles(alice_client.get("/").content.decode()) == ["Notes"]


def test_moving_a_conversation_into_a_folder_and_out(alice: User, alice_client: Client) -> None:
    folder = folder_services.folder_create(owner=alice, name="Work")
    conversation = chat(alice, "Report")
    url = reverse("chat:move", args=[conversation.pk])
    response = alice_client.post(url, {"folder": folder.pk}, **FETCH)
    assert response.json()["folder_id"] == folder.pk
    assert response.json()["notice"] == "Moved to “Work”."
    assert Conversation.objects.get(pk=conversation.pk).folder_id == folder.pk
    response = alice_client.post(url, {"folder": ""}, **FETCH)
    assert response.json()["folder_id"] is None
    assert Conversation.objects.get(pk=conversation.pk).folder_id is None


def test_pin_and_unpin_answer_the_new_state(alice: User, alice_client: Client) -> None:
    conversation = chat(alice, "Keep handy")
    response = alice_client.post(reverse("chat:pin", args=[conversation.pk]), **FETCH)
    assert response.json()["pinned"] is True
    response = alice_client.post(reverse("chat:unpin", args=[conversation.pk]), **FETCH)
    assert response.json()["pinned"] is False
    assert Conversation.objects.get(pk=conversation.pk).pinned_at is None


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("chat:folder_update", {"name": "Mine now"}),
        ("chat:folder_delete", {}),
    ],
)
def test_another_persons_folder_is_404_and_unchanged(
    bob: User, alice_client: Client, name: str, fields: dict[str, str]
) -> None:
    theirs = folder_services.folder_create(owner=bob, name="Bob's")
    response = alice_client.post(reverse(name, args=[theirs.pk]), fields, **FETCH)
    assert response.status_code == 404
    assert Folder.objects.get(pk=theirs.pk).name == "Bob's"


@pytest.mark.parametrize("name", ["chat:pin", "chat:unpin", "chat:archive", "chat:move"])
def test_another_persons_conversation_is_404(bob: User, alice_client: Client, name: str) -> None:
    theirs = chat(bob, "Bob's chat")
    response = alice_client.post(reverse(name, args=[theirs.pk]), **FETCH)
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert (theirs.pinned_at, theirs.archived_at, theirs.folder_id) == (None, None, None)


def test_moving_into_another_persons_folder_is_404(
    alice: User, bob: User, alice_client: Client
) -> None:
    theirs = folder_services.folder_create(owner=bob, name="Bob's")
    conversation = chat(alice, "Mine")
    url = reverse("chat:move", args=[conversation.pk])
    assert alice_client.post(url, {"folder": theirs.pk}, **FETCH).status_code == 404
    assert Conversation.objects.get(pk=conversation.pk).folder_id is None


def test_the_folder_views_take_posts_with_the_csrf_token_only(alice: User) -> None:
    conversation = chat(alice, "A")
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.get(reverse("chat:pin", args=[conversation.pk])).status_code == 405
    assert client.post(reverse("chat:pin", args=[conversation.pk])).status_code == 403
    assert client.post(reverse("chat:folder_create"), {"name": "X"}).status_code == 403
    assert Conversation.objects.get(pk=conversation.pk).pinned_at is None
    assert not Folder.objects.exists()


def test_the_folder_list_is_the_persons_own(alice: User, bob: User) -> None:
    folder_services.folder_create(owner=alice, name="b")
    folder_services.folder_create(owner=alice, name="A")
    folder_services.folder_create(owner=bob, name="Bob's")
    assert [f.name for f in selectors.folder_list_for_user(user=alice)] == ["A", "b"]
