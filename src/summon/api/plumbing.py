"""What every handler does before and after its one service call: authenticate, rate-limit,
honour ``Idempotency-Key``, answer with JSON — and how routes are registered under every path
spelling clients use (with and without the trailing slash, ``/bot/`` and ``/bots/``)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Request, Response

from summon.api.auth import Authenticator
from summon.api.body import SummonRoute
from summon.api.errors import RateLimited, RequestInvalid, error_response
from summon.api.ratelimit import RateLimiter
from summon.domain.errors import NotFound
from summon.services import idempotency
from summon.services.context import Context

JSON = "application/json"


class Api:
    """Per-application state the handlers share (kept on ``app.state.api``)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.auth = Authenticator(ctx)
        self.limiter = RateLimiter(
            {
                "create": ctx.settings.rate_limit_create_per_min,
                "other": ctx.settings.rate_limit_other_per_min,
            },
            ctx.clock.monotonic,
        )

    async def guard(self, request: Request, bucket: str = "other") -> UUID:
        """Authenticate and rate-limit; the caller's workspace id."""
        workspace_id = await self.auth.workspace_of(request)
        if self.ctx.settings.rate_limits:
            wait = self.limiter.hit(workspace_id, bucket)
            if wait is not None:
                raise RateLimited(wait)
        return workspace_id

    async def idempotent(
        self, request: Request, workspace_id: UUID, run: Callable[[], Awaitable[Response]]
    ) -> Response:
        """Run ``run`` once per ``Idempotency-Key``; later calls with the key replay its answer.

        Answers that explain a client error are remembered too (the same request would fail the
        same way); unexpected failures release the key so the client can retry.
        """
        key = request.headers.get("idempotency-key")
        if key is None:
            return await run()
        if not (0 < len(key) <= idempotency.MAX_KEY_LENGTH and key.isascii() and key.isprintable()):
            raise RequestInvalid({"Idempotency-Key": ["Use 1–255 printable ASCII characters."]})
        scope = f"{request.method} {canonical_path(request.url.path)}"
        body = await request.body()
        replay = await idempotency.begin(self.ctx, workspace_id, scope, key, body)
        if replay is not None:
            return Response(
                replay.body, status_code=replay.status_code, media_type=JSON,
                headers={"Idempotent-Replayed": "true"},
            )
        try:
            response = await run()
        except Exception as exc:
            explained = error_response(exc)
            if explained is None or explained.status_code >= 500:
                await idempotency.abort(self.ctx, workspace_id, scope, key)
                raise
            response = explained
        await idempotency.finish(self.ctx, workspace_id, scope, key, response.status_code, bytes(response.body))
        return response


def api_of(request: Request) -> Api:
    return request.app.state.api  # type: ignore[no-any-return]


def base_url(request: Request) -> str:
    """Where absolute URLs point: ``SUMMON_PUBLIC_URL``, else the request's own base (no
    trailing slash)."""
    return (api_of(request).ctx.settings.public_url or str(request.base_url)).rstrip("/")


async def _caller(request: Request) -> UUID:
    return await api_of(request).guard(request, "other")


async def _creator(request: Request) -> UUID:
    return await api_of(request).guard(request, "create")


# Dependencies resolve before the body is validated: a caller without a valid key gets 401,
# whatever it sent.
Caller = Annotated[UUID, Depends(_caller)]
"""The authenticated caller's workspace id (rate-limit bucket "other")."""
Creator = Annotated[UUID, Depends(_creator)]
"""The authenticated caller's workspace id (rate-limit bucket "create")."""


def canonical_path(path: str) -> str:
    path = path.rstrip("/") + "/"
    return path.replace("/api/v1/bots/", "/api/v1/bot/", 1)


def json_ok(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)


def refuse_unknown_query(request: Request, allowed: frozenset[str]) -> None:
    """A typo in a filter must not silently return everything: unknown parameters are a 400."""
    unknown = [k for k in request.query_params if k not in allowed]
    if unknown:
        raise RequestInvalid({(k or "query"): ["Unknown query parameter."] for k in unknown})


def parse_id(value: str) -> UUID:
    """Path ids are UUIDs; anything else is simply not found (like a foreign id)."""
    try:
        return UUID(value)
    except ValueError:
        raise NotFound("object", value) from None


def add_route(
    router: APIRouter,
    path: str,
    endpoint: Callable[..., Any],
    methods: list[str],
    *,
    aliases: tuple[tuple[str, str], ...] = (),
    **kwargs: Any,
) -> None:
    """Register ``endpoint`` at ``path`` (documented) and at every other spelling (hidden):
    without the trailing slash, and with each ``(old, new)`` alias prefix substituted.
    No redirects: a redirect would drop a POST body."""
    spellings = [path]
    for old, new in aliases:
        if path.startswith(old):
            spellings.append(new + path[len(old):])
    for i, spelling in enumerate(spellings):
        for variant in (spelling, spelling.rstrip("/")):
            router.add_api_route(
                variant,
                endpoint,
                methods=methods,
                include_in_schema=(i == 0 and variant == path),
                route_class_override=SummonRoute,
                **kwargs,
            )
