"""Workspaces (tenants) and their API keys."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

DEFAULT_WORKSPACE = "default"
WORKSPACE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
KEY_PREFIX = "sk_"


@dataclass(frozen=True, slots=True)
class Workspace:
    id: UUID
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A stored key: only its hash and a short prefix (to tell keys apart in listings)."""

    id: UUID
    workspace_id: UUID
    key_hash: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None
    workspace_name: str | None = None


def hash_api_key(key: str) -> str:
    """Keys are 256-bit random tokens, so one SHA-256 suffices: no dictionary to guess from."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def valid_workspace_name(name: str) -> bool:
    return WORKSPACE_NAME.fullmatch(name) is not None
