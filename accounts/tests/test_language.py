"""The page language (accounts.language, accounts.views.set_language): the browser's by
default, the switcher's choice once made, and for a signed-in person the same choice on
any browser they sign in from."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.test import AsyncClient, Client, RequestFactory
from django.urls import reverse

from accounts.language import SESSION_KEY
from accounts.models import Preference

pytestmark = pytest.mark.django_db

PASSWORD = "sturdy-pass-4821"
# What a browser sends when it opens a page (the account's language is applied then).
PAGE = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
RUSSIAN_BROWSER = {"HTTP_ACCEPT_LANGUAGE": "ru-RU,ru;q=0.9,en;q=0.5", "HTTP_ACCEPT": PAGE}
ENGLISH_BROWSER = {"HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9", "HTTP_ACCEPT": PAGE}


def html_lang(response: Any) -> str:
    """The ``lang`` of the page's <html> element."""
    match = re.search(r'<html lang="([^"]*)"', response.content.decode())
    assert match, "the page has no <html lang>"
    return match.group(1)


def sign_in(client: Client, username: str, **headers: str) -> None:
    """Sign in through the sign-in form, as a browser does (the signal fires there)."""
    response = client.post(
        reverse("login"), {"username": username, "password": PASSWORD}, **headers
    )
    assert response.status_code == 302, "sign-in failed"


def switch(client: Client, language: str, next_url: str = "/", **headers: str) -> Any:
    return client.post(reverse("set_language"), {"language": language, "next": next_url}, **headers)


@pytest.fixture
def person() -> User:
    return User.objects.create_user("olga", password=PASSWORD)


def test_a_page_follows_the_browsers_language_by_default(client: Client) -> None:
    russian = client.get(reverse("login"), **RUSSIAN_BROWSER)
    assert html_lang(russian) == "ru"
    assert "Войти" in russian.content.decode()
    english = Client().get(reverse("login"), **ENGLISH_BROWSER)
    assert html_lang(english) == "en"
    assert "Log in" in english.content.decode()


def test_switching_changes_the_language_of_the_next_page_whatever_the_browser_says(
    client: Client,
) -> None:
    response = switch(client, "ru", reverse("login"), **ENGLISH_BROWSER)
    assert (response.status_code, response["Location"]) == (302, reverse("login"))
    assert client.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ru"
    page = client.get(reverse("login"), **ENGLISH_BROWSER)
    assert html_lang(page) == "ru"
    assert "Войти" in page.content.decode()

    switch(client, "en", reverse("login"), **RUSSIAN_BROWSER)
    assert html_lang(client.get(reverse("login"), **RUSSIAN_BROWSER)) == "en"


def test_every_page_has_the_switcher_with_the_current_language_chosen(
    client: Client, person: User
) -> None:
    login_page = client.get(reverse("login"), **RUSSIAN_BROWSER).content.decode()
    assert f'action="{reverse("set_language")}"' in login_page
    assert re.search(r'<option value="ru" lang="ru" selected>Русский</option>', login_page)
    client.force_login(person)
    chat_page = client.get(reverse("chat:index"), **ENGLISH_BROWSER).content.decode()
    assert chat_page.count(f'action="{reverse("set_language")}"') == 1
    assert re.search(r'<option value="en" lang="en" selected>English</option>', chat_page)


def test_a_signed_in_persons_choice_follows_them_to_another_browser(
    client: Client, person: User
) -> None:
    sign_in(client, "olga", **ENGLISH_BROWSER)
    switch(client, "ru", **ENGLISH_BROWSER)
    assert Preference.objects.get(user=person).language == "ru"

    other_browser = Client()  # no cookie, no session, an English browser
    assert html_lang(other_browser.get(reverse("login"), **ENGLISH_BROWSER)) == "en"
    sign_in(other_browser, "olga", **ENGLISH_BROWSER)
    assert other_browser.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ru"
    page = other_browser.get(reverse("api_keys"), **ENGLISH_BROWSER)
    assert html_lang(page) == "ru"


def test_the_accounts_language_comes_back_when_the_cookie_is_gone(
    client: Client, person: User
) -> None:
    Preference.objects.create(user=person, language="ru")
    sign_in(client, "olga", **ENGLISH_BROWSER)
    del client.cookies[settings.LANGUAGE_COOKIE_NAME]
    response = client.get(reverse("api_keys"), **ENGLISH_BROWSER)
    assert html_lang(response) == "ru"
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ru"


def test_a_session_from_before_the_choice_was_copied_reads_the_account_once(
    client: Client, person: User
) -> None:
    client.force_login(person)
    session = client.session
    session.pop(SESSION_KEY, None)
    session.save()
    Preference.objects.create(user=person, language="ru")
    assert html_lang(client.get(reverse("api_keys"), **ENGLISH_BROWSER)) == "ru"
    assert client.session[SESSION_KEY] == "ru"


@pytest.mark.django_db(transaction=True)  # the ASGI handler's threads see the rows
async def test_the_accounts_language_applies_under_asgi_too() -> None:
    person = await User.objects.acreate_user("olga", password=PASSWORD)
    await Preference.objects.acreate(user=person, language="ru")
    client = AsyncClient()
    await client.aforce_login(person)
    session = await client.asession()
    await session.apop(SESSION_KEY, None)
    await session.asave()
    response = await client.get(
        reverse("login") + "?next=/", headers={"accept-language": "en", "accept": PAGE}
    )
    # A signed-in person is sent on from the sign-in page; the redirect sets the cookie.
    assert response.cookies[settings.LANGUAGE_COOKIE_NAME].value == "ru"


def test_someone_who_never_chose_keeps_the_browsers_language_after_sign_in(
    client: Client, person: User
) -> None:
    sign_in(client, "olga", **RUSSIAN_BROWSER)
    assert settings.LANGUAGE_COOKIE_NAME not in client.cookies
    assert html_lang(client.get(reverse("api_keys"), **RUSSIAN_BROWSER)) == "ru"
    assert html_lang(client.get(reverse("api_keys"), **ENGLISH_BROWSER)) == "en"


def test_an_unknown_language_is_refused_with_the_codes_it_takes_and_changes_nothing(
    client: Client, person: User
) -> None:
    client.force_login(person)
    response = switch(client, "xx-evil")
    assert response.status_code == 400
    assert response.content.decode() == "Unknown language “xx-evil”. Choose one of: en, ru."
    assert settings.LANGUAGE_COOKIE_NAME not in client.cookies
    assert not Preference.objects.filter(user=person).exists()


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/path", "javascript:alert(1)"]
)
def test_the_switcher_never_redirects_to_another_site(client: Client, next_url: str) -> None:
    response = switch(client, "ru", next_url)
    assert (response.status_code, response["Location"]) == (302, reverse("chat:index"))


def test_without_next_the_switcher_goes_back_to_the_referring_page(client: Client) -> None:
    response = client.post(
        reverse("set_language"), {"language": "ru"}, HTTP_REFERER="http://testserver/usage/"
    )
    assert response["Location"] == "http://testserver/usage/"


def test_the_switcher_takes_only_post_with_a_csrf_token() -> None:
    client = Client(enforce_csrf_checks=True)
    assert client.get(reverse("set_language")).status_code == 405
    assert client.post(reverse("set_language"), {"language": "ru"}).status_code == 403


def test_a_reply_stream_or_api_call_never_reads_the_account_language(
    client: Client, person: User, django_assert_num_queries: Any
) -> None:
    """Only a page being opened looks the language up: a reply's POST, an event stream
    or an API call without the cookie does not read the session or the database here
    (a stream holds no database connection while it waits)."""
    from accounts.language import AccountLanguageMiddleware

    seen: list[str] = []
    middleware = AccountLanguageMiddleware(
        lambda request: seen.append(request.path) or HttpResponse()
    )
    factory = RequestFactory()
    for request in (
        factory.get("/m/1/events/", HTTP_ACCEPT="text/event-stream"),
        factory.post("/c/1/reply/", {"content": "hi"}),
        factory.get("/v1/models", HTTP_ACCEPT="application/json"),
    ):
        request.session = _ExplodingSession()
        request.user = person
        with django_assert_num_queries(0):
            middleware(request)
    assert seen == ["/m/1/events/", "/c/1/reply/", "/v1/models"]


class _ExplodingSession(dict):
    """A session that fails the test if it is read."""

    def get(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the session was read")
