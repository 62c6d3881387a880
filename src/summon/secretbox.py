"""Secrets at rest (webhook signing secrets, calendar refresh tokens, CalDAV passwords) are
encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``).

The key comes from ``SUMMON_SECRET_KEY``; when unset, one is generated into the data dir on first
start (``secret.key``, mode 0600) and reused after. Several keys may be given, comma-separated:
the first encrypts, all decrypt — that is how a key is rotated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

KEY_FILE = "secret.key"


class SecretUnreadable(Exception):
    """A stored secret cannot be decrypted with any configured key."""

    def __init__(self) -> None:
        super().__init__("stored secret cannot be decrypted with SUMMON_SECRET_KEY (was the key changed?)")


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(_normalise(k)) for k in keys])
        self._first = _normalise(keys[0])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def derive(self, label: str) -> bytes:
        """32 bytes that only the holder of the (first) key can compute, one value per ``label``
        (HMAC-SHA256). For secrets that need no storage, such as a workspace's real-time
        signing secret; they change when the first key changes."""
        return hmac.new(base64.urlsafe_b64decode(self._first), label.encode("utf-8"), hashlib.sha256).digest()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise SecretUnreadable() from None


def _normalise(key: str) -> bytes:
    """Accept a Fernet key (urlsafe base64 of 32 bytes) or any other passphrase-like string of
    at least 32 characters, which is hashed into one."""
    raw = key.strip().encode()
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32:
            return raw
    except ValueError:
        pass
    if len(raw) < 32:
        raise ValueError("SUMMON_SECRET_KEY must be a Fernet key or at least 32 characters")
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest())


def load_or_create_keys(configured: str | None, data_dir: Path) -> list[str]:
    """The configured keys, or the data dir's generated key (created on first call)."""
    if configured:
        return [k for k in (part.strip() for part in configured.split(",")) if k]
    path = data_dir / KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(Fernet.generate_key().decode() + "\n")
    return [path.read_text().strip()]
