"""Who is who in a room: the lecturer proves the role with a key the server is given.

The key comes from `AE_LECTURER_KEY` or `lecturer_key` in `.streamlit/secrets.toml`. It is
compared in constant time and never leaves the server: a session that proved it is remembered
by a signed token (an expiry and an HMAC of it under the key), which the page keeps in a
cookie so a reload within a lecture does not ask again. With no key configured (one person on
a laptop) everyone is the lecturer, as before roles existed.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

KEY_VARIABLE = "AE_LECTURER_KEY"
SECRETS_FILE = Path(__file__).resolve().parent.parent / ".streamlit" / "secrets.toml"
TOKEN_HOURS = 4.0  # a lecture, with margin: a reload within it keeps the role
COOKIE_NAME = "ae_lecturer"


@dataclass(frozen=True)
class Visitor:
    """Who does something: a browser session (None: the engine itself) and whether it is the
    lecturer. The engine may do anything a lecturer may."""

    session: str | None
    lecturer: bool

    @property
    def is_engine(self) -> bool:
        return self.session is None


ENGINE = Visitor(None, True)


SECRETS_READ_EVERY = 10.0  # seconds: pages ask on every rerun of every session, the file changes rarely
_secrets_read: tuple[float, str | None] = (-1e9, None)


def lecturer_key() -> str | None:
    """The configured key, or None: everyone is the lecturer."""
    key = os.environ.get(KEY_VARIABLE, "").strip()
    return key or _secrets_key()


def _secrets_key() -> str | None:
    """`lecturer_key` from the secrets file, read again at most every SECRETS_READ_EVERY seconds."""
    global _secrets_read
    read_at, value = _secrets_read
    if time.monotonic() - read_at < SECRETS_READ_EVERY:
        return value
    try:
        secrets = tomllib.loads(SECRETS_FILE.read_text(encoding="utf-8"))
        found = secrets.get("lecturer_key")
        value = found.strip() or None if isinstance(found, str) else None
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        value = None
    _secrets_read = (time.monotonic(), value)
    return value


def roles_in_use() -> bool:
    return lecturer_key() is not None


def key_matches(given: str) -> bool:
    key = lecturer_key()
    return key is not None and hmac.compare_digest(given.strip().encode(), key.encode())


def _signature(key: str, expires: int) -> str:
    return hmac.new(key.encode(), f"lecturer:{expires}".encode(), hashlib.sha256).hexdigest()


def make_token(now: float | None = None) -> str:
    """A token proving the role until it expires; it says nothing about the key."""
    key = lecturer_key()
    if key is None:
        raise ValueError("No lecturer key is configured.")
    expires = int((now or time.time()) + TOKEN_HOURS * 3600)
    return f"{expires}.{_signature(key, expires)}"


def token_valid(token: str | None, now: float | None = None) -> bool:
    key = lecturer_key()
    if key is None or not token or "." not in token:
        return False
    expires, _, signature = token.partition(".")
    if not expires.isdigit() or int(expires) < (now or time.time()):
        return False
    return hmac.compare_digest(signature, _signature(key, int(expires)))
