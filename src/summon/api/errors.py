"""Every error response, in one place (SPEC §3):

- field validation → 400 ``{"<field>": ["message", …]}`` with dotted paths for nested fields;
- malformed JSON → 400 ``{"detail": "JSON parse error - …"}``;
- a business rule → its status with ``{"code": …, "detail": …}`` (+ ``Retry-After`` when known);
- 401 ``{"detail": "Invalid token."}``, 404 ``{"detail": "Not found."}``, 413, 429 + ``Retry-After``;
- anything unexpected → 500 ``{"detail": "Internal server error."}``, logged with its traceback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from summon.api.body import PayloadTooLarge
from summon.domain.errors import FieldInvalid, NotFound, RuleViolation
from summon.domain.lifecycle import IllegalTransition

log = logging.getLogger(__name__)


class Unauthorized(Exception):
    pass


class RateLimited(Exception):
    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"rate limited; retry after {retry_after:.1f}s")


class RequestInvalid(Exception):
    """Field errors found by the API layer itself (e.g. query parameters it parses by hand)."""

    def __init__(self, errors: Mapping[str, list[str]]) -> None:
        self.errors = dict(errors)
        super().__init__(str(self.errors))


def json_response(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def retry_after_header(seconds: float | None) -> dict[str, str]:
    return {} if seconds is None else {"Retry-After": str(max(1, math.ceil(seconds)))}


def field_errors(errors: Iterable[Mapping[str, Any]]) -> tuple[dict[str, list[str]], str | None]:
    """Pydantic/FastAPI errors → ``{"dotted.path": [messages]}``; or a JSON parse message."""
    out: dict[str, list[str]] = {}
    for err in errors:
        loc = list(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            return {}, f"JSON parse error - {err.get('ctx', {}).get('error', 'invalid JSON')}"
        if loc and loc[0] in ("body", "query", "path", "header"):
            where = loc.pop(0)
            if where == "header":
                loc = [f"header:{loc[0]}"] if loc else ["header"]
        # Tagged-union members and function names in the path help nobody.
        parts = [str(p) for p in loc if not (isinstance(p, str) and ("[" in p or p.startswith("function-")))]
        key = ".".join(parts) or "non_field_errors"
        message = _message(err)
        out.setdefault(key, [])
        if message not in out[key]:
            out[key].append(message)
    return out, None


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err.get("msg", "Invalid value."))
    kind = err.get("type")
    if kind == "missing":
        return "This field is required."
    if kind == "extra_forbidden":
        return "Unknown field."
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    return msg


def error_response(exc: Exception) -> Response | None:
    """The response for an error the API knows how to explain; None for anything else."""
    if isinstance(exc, RequestValidationError):
        errors, parse_error = field_errors(exc.errors())
        if parse_error is not None:
            return json_response(400, {"detail": parse_error})
        return json_response(400, errors or {"non_field_errors": ["Invalid data."]})
    if isinstance(exc, RequestInvalid):
        return json_response(400, exc.errors)
    if isinstance(exc, FieldInvalid):
        return json_response(400, {exc.field: [exc.message]})
    if isinstance(exc, RuleViolation):
        return json_response(
            exc.http_status, {"code": exc.code, "detail": exc.detail}, retry_after_header(exc.retry_after)
        )
    if isinstance(exc, NotFound):
        return json_response(404, {"detail": "Not found."})
    if isinstance(exc, Unauthorized):
        return json_response(401, {"detail": "Invalid token."}, {"WWW-Authenticate": "Token"})
    if isinstance(exc, RateLimited):
        return json_response(
            429,
            {"code": "rate_limited", "detail": "Request was throttled. Retry after the time in Retry-After."},
            retry_after_header(exc.retry_after),
        )
    if isinstance(exc, PayloadTooLarge):
        return json_response(413, {"detail": exc.detail})
    if isinstance(exc, IllegalTransition):
        log.error("refused %s", exc)
        return json_response(409, {"code": "illegal_transition", "detail": str(exc)})
    if isinstance(exc, StarletteHTTPException):
        detail = {404: "Not found.", 405: "Method not allowed."}.get(exc.status_code, exc.detail)
        return json_response(exc.status_code, {"detail": detail}, exc.headers)
    return None


EXPLAINED = (
    RequestValidationError,
    RequestInvalid,
    FieldInvalid,
    RuleViolation,
    NotFound,
    Unauthorized,
    RateLimited,
    PayloadTooLarge,
    IllegalTransition,
    StarletteHTTPException,
)


def allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    async def _explained(request: Request, exc: Exception) -> Response:
        if isinstance(exc, StarletteHTTPException) and exc.status_code == 405:
            # Each method of a path is its own route, so the router only knows the methods of
            # the first route that matched the path; Allow must list them all.
            exc = StarletteHTTPException(405, headers={"Allow": ", ".join(allowed_methods(request))})
        response = error_response(exc)
        assert response is not None
        return response

    for kind in EXPLAINED:
        app.add_exception_handler(kind, _explained)

    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return json_response(500, {"detail": "Internal server error."})

    app.add_exception_handler(Exception, _unexpected)
