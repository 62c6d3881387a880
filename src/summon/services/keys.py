"""Workspaces and API keys: creating, listing, revoking, authenticating, first-start bootstrap."""

from __future__ import annotations

import secrets
from uuid import UUID, uuid4

from summon.domain.errors import FieldInvalid, NotFound
from summon.domain.workspaces import (
    DEFAULT_WORKSPACE,
    KEY_PREFIX,
    ApiKey,
    Workspace,
    hash_api_key,
    valid_workspace_name,
)
from summon.services.context import Context


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def ensure_workspace(ctx: Context, name: str) -> Workspace:
    if not valid_workspace_name(name):
        raise FieldInvalid("workspace", "Use 1–100 letters, digits, '.', '_' or '-', starting with a letter or digit.")
    workspace, _ = await ctx.store.ensure_workspace(Workspace(uuid4(), name, ctx.clock.now()))
    return workspace


async def create_api_key(ctx: Context, workspace_name: str) -> tuple[ApiKey, str]:
    """Create the workspace if needed and a new key for it. The plaintext key is returned once
    and never stored."""
    workspace = await ensure_workspace(ctx, workspace_name)
    plaintext = generate_api_key()
    key = ApiKey(
        id=uuid4(),
        workspace_id=workspace.id,
        key_hash=hash_api_key(plaintext),
        prefix=plaintext[: len(KEY_PREFIX) + 6],
        created_at=ctx.clock.now(),
        workspace_name=workspace.name,
    )
    await ctx.store.add_api_key(key)
    return key, plaintext


async def list_api_keys(ctx: Context, workspace_name: str | None = None) -> list[ApiKey]:
    workspace_id: UUID | None = None
    if workspace_name is not None:
        workspace = await ctx.store.workspace_by_name(workspace_name)
        if workspace is None:
            raise NotFound("workspace", workspace_name)
        workspace_id = workspace.id
    return await ctx.store.list_api_keys(workspace_id)


async def revoke_api_key(ctx: Context, key_id_or_prefix: str) -> ApiKey:
    """Revoke by id, or by the prefix shown in listings (must match exactly one key)."""
    keys = await ctx.store.list_api_keys()
    matches = [k for k in keys if str(k.id) == key_id_or_prefix or k.prefix == key_id_or_prefix]
    if len(matches) != 1:
        raise NotFound("api key", key_id_or_prefix)
    key = matches[0]
    await ctx.store.revoke_api_key(key.id, ctx.clock.now())
    return key


async def authenticate(ctx: Context, plaintext: str) -> ApiKey | None:
    """The live (unrevoked) key for ``plaintext``, or None."""
    key = await ctx.store.find_api_key(hash_api_key(plaintext))
    if key is None or key.revoked_at is not None:
        return None
    return key


async def bootstrap(ctx: Context) -> str | None:
    """On first start with an empty database: create ``default`` and return its one key."""
    if await ctx.store.count_workspaces() > 0:
        return None
    _, plaintext = await create_api_key(ctx, DEFAULT_WORKSPACE)
    return plaintext
