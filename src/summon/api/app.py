"""The FastAPI application factory. Nothing happens at import time: ``create_app`` builds it
from a :class:`~summon.services.context.Context`, and the caller owns start-up and shutdown."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

import summon
from summon.api import bots, calendars, errors, webhooks
from summon.api import mailboxes  # -- mailboxes --
from summon.api import recordings  # -- recordings --
from summon.api.body import SummonRoute
from summon.api.plumbing import Api, json_ok
from summon.services.context import Context

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def create_app(ctx: Context, lifespan: Lifespan | None = None) -> FastAPI:
    @asynccontextmanager
    async def _no_lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = FastAPI(
        title="Summon",
        version=summon.__version__,
        description="Sends bots into online meetings on time. Recall.ai-compatible bot API.",
        lifespan=lifespan or _no_lifespan,
        redirect_slashes=False,
        docs_url="/docs",
        redoc_url=None,
    )
    app.router.route_class = SummonRoute
    app.state.api = Api(ctx)
    errors.install(app)
    bots.register(app.router)
    webhooks.register(app.router)
    webhooks.register_ledger(app.router)
    calendars.register(app.router)
    mailboxes.register(app.router)  # -- mailboxes --
    recordings.register(app.router)  # -- recordings --

    @app.get("/healthz", include_in_schema=False)
    async def healthz(_: Request) -> Response:
        return json_ok({"status": "ok"})

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {
                "tokenAuth": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": 'API key, as "Token <key>" (the bare key is accepted too).',
                }
            }
            schema["security"] = [{"tokenAuth": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
