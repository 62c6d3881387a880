"""``summon``: run the service, manage keys, and talk to the API.

Commands that need the database (``migrate``, ``keys``) open it directly with the same settings as
``serve``; ``bots`` commands are a thin client over the HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

import click

from summon.settings import ALL_ROLES, Settings


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="summon")
def main() -> None:
    """Summon sends bots into online meetings on time."""


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1, SUMMON_HOST).")
@click.option("--port", type=int, default=None, help="Port to listen on (default 8400, SUMMON_PORT).")
@click.option("--roles", default=",".join(ALL_ROLES), show_default=True, help="Comma-separated roles to run.")
def serve(host: str | None, port: int | None, roles: str) -> None:
    """Run the service (every role in one process by default)."""
    from summon.server import run_serve

    settings = _settings(host=host, port=port)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_serve(settings, [r.strip() for r in roles.split(",") if r.strip()])


@main.command()
def worker() -> None:
    """Run only the fleet agent (bot runtimes and the scheduler claiming bots for them), for
    multi-host fleets on PostgreSQL."""
    from summon.server import run_serve

    settings = _settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_serve(settings, ["fleet"])


@main.command()
def migrate() -> None:
    """Apply database migrations (serve does this on start too)."""
    from summon.server import prepare_data_dir
    from summon.store.migrate import migrate as do_migrate

    settings = _settings()
    prepare_data_dir(settings)
    _run(do_migrate(settings.sqlalchemy_url))
    click.echo("database is up to date", err=True)


@main.group()
def keys() -> None:
    """Manage API keys."""


async def _with_context(fn: Any) -> Any:
    from summon.server import running

    async with running(_settings(), announce_key=False) as ctx:
        return await fn(ctx)


@keys.command("create")
@click.option("--workspace", required=True, help="Workspace name (created if needed).")
def keys_create(workspace: str) -> None:
    """Create a key and print only the key (scriptable)."""
    from summon.domain.errors import FieldInvalid
    from summon.services import keys as service

    try:
        _, plaintext = _run(_with_context(lambda ctx: service.create_api_key(ctx, workspace)))
    except FieldInvalid as exc:
        raise click.BadParameter(exc.message, param_hint="--workspace") from None
    click.echo(plaintext)


@keys.command("list")
@click.option("--workspace", default=None, help="Only this workspace's keys.")
def keys_list(workspace: str | None) -> None:
    """List keys (prefix, workspace, created, revoked)."""
    from summon.domain.errors import NotFound
    from summon.services import keys as service

    try:
        found = _run(_with_context(lambda ctx: service.list_api_keys(ctx, workspace)))
    except NotFound:
        raise click.ClickException(f"no workspace named {workspace!r}") from None
    click.echo(f"{'ID':36}  {'PREFIX':10}  {'WORKSPACE':20}  {'CREATED':20}  REVOKED")
    for k in found:
        revoked = k.revoked_at.strftime("%Y-%m-%d %H:%M:%S") if k.revoked_at else "-"
        click.echo(
            f"{k.id!s:36}  {k.prefix:10}  {k.workspace_name or '':20}  "
            f"{k.created_at.strftime('%Y-%m-%d %H:%M:%S'):20}  {revoked}"
        )


@keys.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke a key by its id or the prefix shown by `keys list`."""
    from summon.domain.errors import NotFound
    from summon.services import keys as service

    try:
        revoked = _run(_with_context(lambda ctx: service.revoke_api_key(ctx, key)))
    except NotFound:
        raise click.ClickException(f"no single key matches {key!r}") from None
    click.echo(f"revoked {revoked.prefix} ({revoked.id})", err=True)


# -- bots: a thin client over the HTTP API --------------------------------------------------------
api_options = [
    click.option("--url", envvar="SUMMON_URL", default="http://127.0.0.1:8400", show_default=True,
                 help="Base URL of the Summon API (SUMMON_URL)."),
    click.option("--key", envvar="SUMMON_API_KEY", required=True, help="API key (SUMMON_API_KEY)."),
]


def with_api(fn: Any) -> Any:
    for option in reversed(api_options):
        fn = option(fn)
    return fn


def _call(method: str, url: str, key: str, path: str, **kwargs: Any) -> Any:
    import httpx

    try:
        response = httpx.request(
            method, url.rstrip("/") + path, headers={"Authorization": f"Token {key}"}, timeout=30, **kwargs
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot reach {url}: {exc}") from None
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        click.echo(json.dumps(body, indent=2), err=True)
        raise click.ClickException(f"HTTP {response.status_code}")
    return body


@main.group()
def bots() -> None:
    """Create and inspect bots (over the HTTP API)."""


@bots.command("create")
@click.argument("meeting_url")
@click.option("--bot-name", default=None)
@click.option("--join-at", default=None, help="ISO 8601 with offset, e.g. 2030-01-01T10:00:00Z.")
@click.option("--metadata", "-m", multiple=True, help="KEY=VALUE (repeatable).")
@click.option("--body", default=None, help="Extra Create Bot fields as a JSON object.")
@with_api
def bots_create(meeting_url: str, bot_name: str | None, join_at: str | None, metadata: tuple[str, ...],
                body: str | None, url: str, key: str) -> None:
    """Create a bot for MEETING_URL and print it."""
    payload: dict[str, Any] = json.loads(body) if body else {}
    payload["meeting_url"] = meeting_url
    if bot_name:
        payload["bot_name"] = bot_name
    if join_at:
        payload["join_at"] = join_at
    if metadata:
        payload["metadata"] = dict(item.split("=", 1) for item in metadata)
    click.echo(json.dumps(_call("POST", url, key, "/api/v1/bot/", json=payload), indent=2))


@bots.command("list")
@click.option("--status", multiple=True)
@click.option("--page", type=int, default=1)
@with_api
def bots_list(status: tuple[str, ...], page: int, url: str, key: str) -> None:
    """List bots: id, state, join_at, platform."""
    params: list[tuple[str, str]] = [("page", str(page))] + [("status", s) for s in status]
    data = _call("GET", url, key, "/api/v1/bot/", params=params)
    for bot in data["results"]:
        click.echo(f"{bot['id']}  {bot['state']:24}  {bot['join_at'] or '-':27}  {bot['meeting_url'].get('platform')}")
    click.echo(f"{data['count']} bot(s)", err=True)


@bots.command("get")
@click.argument("bot_id")
@with_api
def bots_get(bot_id: str, url: str, key: str) -> None:
    """Print one bot as JSON."""
    click.echo(json.dumps(_call("GET", url, key, f"/api/v1/bot/{bot_id}/"), indent=2))


@bots.command("watch")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--limit", type=int, default=40, show_default=True, help="How many of the newest bots to show.")
@click.option("--status", multiple=True, help="Only bots in these states (repeatable).")
@click.option("--once", is_flag=True, help="Print one table and exit.")
@with_api
def bots_watch(interval: float, limit: int, status: tuple[str, ...], once: bool, url: str, key: str) -> None:
    """A live table of bots, their states and how punctually they joined."""
    import httpx

    from summon.cli.watch import watch

    try:
        watch(url, key, interval, limit, status, once)
    except KeyboardInterrupt:
        pass
    except httpx.HTTPError as exc:
        raise click.ClickException(f"cannot read bots from {url}: {exc}") from None


@main.group()
def webhooks() -> None:
    """Manage webhook endpoints (over the HTTP API)."""


@webhooks.command("add")
@click.argument("endpoint_url")
@click.option("--event", "events", multiple=True, help="Only these event types (repeatable; default: all).")
@click.option("--description", default=None)
@with_api
def webhooks_add(endpoint_url: str, events: tuple[str, ...], description: str | None, url: str, key: str) -> None:
    """Add an endpoint (ENDPOINT_URL receives the events); prints it with its signing secret
    (shown only now)."""
    body: dict[str, Any] = {"url": endpoint_url}
    if events:
        body["event_types"] = list(events)
    if description:
        body["description"] = description
    click.echo(json.dumps(_call("POST", url, key, "/api/v1/webhook_endpoints/", json=body), indent=2))


@webhooks.command("list")
@with_api
def webhooks_list(url: str, key: str) -> None:
    """List endpoints: id, url, events, state."""
    for e in _call("GET", url, key, "/api/v1/webhook_endpoints/")["results"]:
        state = "disabled" if e["disabled"] else "enabled"
        click.echo(f"{e['id']}  {state:8}  {e['url']}  {','.join(e['event_types']) or 'all events'}")


@webhooks.command("remove")
@click.argument("endpoint_id")
@with_api
def webhooks_remove(endpoint_id: str, url: str, key: str) -> None:
    """Delete an endpoint."""
    _call("DELETE", url, key, f"/api/v1/webhook_endpoints/{endpoint_id}/")
    click.echo(f"removed {endpoint_id}", err=True)



# -- mailboxes ------------------------------------------------------------------------------------
@main.group()
def mailboxes() -> None:
    """Manage bot mailboxes: addresses that schedule bots when invited."""


@mailboxes.command("add")
@click.argument("address")
@click.option(
    "--allow",
    "allowed",
    multiple=True,
    required=True,
    help="Allowed sender: example.com, *.example.com or alice@example.com (repeatable).",
)
@click.option("--bot-name", default=None, help="Name the bots show in meetings.")
@click.option(
    "--bot-config",
    default=None,
    help="Create Bot fields as a JSON object (no meeting_url/join_at).",
)
@click.option(
    "--send-replies", is_flag=True, help="Answer organizers with an iMIP REPLY (needs a relay)."
)
@click.option(
    "--workspace",
    default=None,
    help="Work on the database directly (like `keys`), for this workspace; else use the API.",
)
@click.option(
    "--url",
    envvar="SUMMON_URL",
    default="http://127.0.0.1:8400",
    show_default=True,
    help="Base URL of the Summon API (SUMMON_URL).",
)
@click.option("--key", envvar="SUMMON_API_KEY", default=None, help="API key (SUMMON_API_KEY).")
def mailboxes_add(
    address: str,
    allowed: tuple[str, ...],
    bot_name: str | None,
    bot_config: str | None,
    send_replies: bool,
    workspace: str | None,
    url: str,
    key: str | None,
) -> None:
    """Add a mailbox: invitations to ADDRESS from allowed senders schedule bots. Prints it."""
    try:
        config: dict[str, Any] = json.loads(bot_config) if bot_config else {}
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--bot-config") from None
    if not isinstance(config, dict):
        raise click.BadParameter("must be a JSON object", param_hint="--bot-config")
    if bot_name:
        config["bot_name"] = bot_name
    body = {
        "address": address,
        "allowed_senders": list(allowed),
        "bot_config": config,
        "send_replies": send_replies,
    }
    if workspace is None:
        if not key:
            raise click.UsageError(
                "give --key (or SUMMON_API_KEY), or --workspace to use the database"
            )
        click.echo(
            json.dumps(_call("POST", url, key, "/api/v1/bot_mailboxes/", json=body), indent=2)
        )
        return
    click.echo(
        json.dumps(_run(_with_context(lambda ctx: _add_mailbox(ctx, workspace, body))), indent=2)
    )


async def _add_mailbox(ctx: Any, workspace: str, body: dict[str, Any]) -> dict[str, Any]:
    from summon.api.errors import RequestInvalid
    from summon.api.mailboxes import mailbox_json, normalise_bot_config
    from summon.domain.errors import FieldInvalid, RuleViolation
    from summon.services import mailboxes as service

    found = await ctx.store.workspace_by_name(workspace)
    if found is None:
        raise click.ClickException(f"no workspace named {workspace!r}")
    try:
        mailbox = await service.create_mailbox(
            ctx,
            found.id,
            body["address"],
            normalise_bot_config(body["bot_config"]),
            body["allowed_senders"],
            send_replies=body["send_replies"],
        )
    except RequestInvalid as exc:
        raise click.ClickException(json.dumps(exc.errors)) from None
    except (FieldInvalid, RuleViolation) as exc:
        raise click.ClickException(str(exc)) from None
    return mailbox_json(mailbox)


@mailboxes.command("list")
@with_api
def mailboxes_list(url: str, key: str) -> None:
    """List mailboxes: id, address, allowed senders."""
    path: str | None = "/api/v1/bot_mailboxes/"
    while path:
        page = _call("GET", url, key, path)
        for m in page["results"]:
            click.echo(f"{m['id']}  {m['address']}  {','.join(m['allowed_senders']) or '(nobody)'}")
        path = page["next"][len(url.rstrip("/")) :] if page["next"] else None


@mailboxes.command("remove")
@click.argument("mailbox_id")
@with_api
def mailboxes_remove(mailbox_id: str, url: str, key: str) -> None:
    """Delete a mailbox (the bots its invitations scheduled are released)."""
    _call("DELETE", url, key, f"/api/v1/bot_mailboxes/{mailbox_id}/")
    click.echo(f"removed {mailbox_id}", err=True)

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
