"""The chat tests' fixtures the API tests share: the scripted fake provider, no titles
written by a model, fast password hashing."""

from chat.tests.conftest import (  # noqa: F401 - fixtures, found by pytest by name
    _fast_password_hashing,
    _no_titles_by_a_model,
    fake_provider,
)
