"""Helpers for the Mongo integration tests."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def database_url(server_url: str, name: str) -> str:
    """The server's URL with its database replaced by ``name`` (options kept)."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))
