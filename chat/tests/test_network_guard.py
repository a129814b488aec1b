"""The test-wide guard (conftest.py): only loopback may be reached."""

from __future__ import annotations

import socket

import pytest

from conftest import NetworkBlockedError


def test_connecting_to_a_public_address_fails() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s, pytest.raises(NetworkBlockedError):
        s.connect(("203.0.113.10", 443))


def test_resolving_a_public_name_fails() -> None:
    with pytest.raises(NetworkBlockedError):
        socket.getaddrinfo("api.openai.com", 443)


def test_loopback_is_allowed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass
