"""Bot mailbox use cases: CRUD, receiving one e-mail, and keeping recurring invites scheduled.

:func:`receive_message` is the one use case both receivers call (the SMTP server for each
accepted message, the IMAP poller for each unprocessed one). It never raises because of what a
message contains — bad mail is judged, recorded and logged — only for infrastructure failures
(the database is down), so the receiver can answer "try again later" (SMTP 451) or leave the
message unflagged (IMAP) and nothing is lost.

Bots are attached to occurrences through :mod:`summon.services.event_bots` with one ref per
occurrence — ``mailbox:<mailbox id>:<uid>`` for a one-off meeting (stable when the organizer
moves it, so the bot moves along), ``mailbox:<mailbox id>:<occurrence key>`` for each
occurrence of a series — and the deduplication key calendars use
(:func:`summon.domain.calendars.default_dedup_key`), so a meeting that is both on a synced
calendar and mailed to a bot gets one bot.

Concurrency: an invite row is fenced by its ``version``. Two messages about one series handled
at once (two SMTP sessions, SMTP and IMAP, two nodes) both attach their bots; the one whose save
meets a newer version re-reads, judges again against the winner's state, and re-attaches the
bots of whatever state won, so the bots always end matching the stored state.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from summon.domain.calendars import default_dedup_key
from summon.domain.errors import FieldInvalid, NotFound, RuleViolation, StaleVersion
from summon.domain.invites import (
    AuthResults,
    Judgement,
    MailMessage,
    SeriesItem,
    Wanted,
    authentication_problem,
    authentication_results,
    envelope_identity,
    judge,
    read_message,
    refusal_placeholder,
    series_items,
    wanted_occurrences,
)
from summon.domain.mailboxes import (
    CANCELLED,
    IGNORED,
    REFUSED,
    SCHEDULED,
    HeldBot,
    Invite,
    Mailbox,
    normalise_address,
    sender_allowed,
    validate_address,
    validate_allowed_senders,
    without_tag,
)
from summon.services import event_bots
from summon.services.context import Context

log = logging.getLogger(__name__)

#: Messages larger than this are parsed in a worker thread.
PARSE_INLINE_BYTES = 256 * 1024
#: Refusals recorded per mailbox (later ones are only logged).
MAX_REFUSALS_KEPT = 1000
#: How many times a receive re-reads an invite another writer changed first.
SAVE_ROUNDS = 5
#: A failed attach (no capacity, …) is tried again this soon by the periodic pass.
RETRY_AFTER = timedelta(minutes=5)
#: One-off meetings get a bot however far ahead they are; this bounds the expansion.
ONE_OFF_HORIZON = timedelta(days=5 * 366)
MAX_REF_BYTES = 1000


@dataclass(frozen=True, slots=True)
class Receipt:
    """What became of one series of a message in one mailbox (for logs, the SMTP and IMAP
    receivers, and tests). ``uid`` is None when the message itself was refused or had no
    calendar."""

    mailbox_id: UUID
    uid: str | None
    status: str
    reason: str | None


# -- mailboxes CRUD --------------------------------------------------------------------------------
async def create_mailbox(
    ctx: Context,
    workspace_id: UUID,
    address: str,
    bot_config: dict[str, Any],
    allowed_senders: list[str],
    *,
    send_replies: bool = False,
) -> Mailbox:
    """A new mailbox. ``bot_config`` is already validated (the API normalises it). Raises
    ``FieldInvalid`` for a bad address or sender entry, ``MailboxAddressTaken`` (409) when any
    workspace has the address."""
    now = ctx.clock.now()
    mailbox = Mailbox(
        id=uuid4(),
        workspace_id=workspace_id,
        address=validate_address(address),
        bot_config=dict(bot_config),
        allowed_senders=validate_allowed_senders(list(allowed_senders)),
        send_replies=send_replies,
        created_at=now,
        updated_at=now,
    )
    await ctx.store.insert_mailbox(mailbox)
    return mailbox


async def get_mailbox(ctx: Context, workspace_id: UUID, mailbox_id: UUID) -> Mailbox:
    mailbox = await ctx.store.get_mailbox(workspace_id, mailbox_id)
    if mailbox is None:
        raise NotFound("bot mailbox", mailbox_id)
    return mailbox


async def list_mailboxes(
    ctx: Context, workspace_id: UUID, after: tuple[datetime, UUID] | None, limit: int
) -> list[Mailbox]:
    return await ctx.store.list_mailboxes(workspace_id, after, limit)


async def update_mailbox(
    ctx: Context,
    workspace_id: UUID,
    mailbox_id: UUID,
    *,
    address: str | None = None,
    bot_config: dict[str, Any] | None = None,
    allowed_senders: list[str] | None = None,
    send_replies: bool | None = None,
) -> Mailbox:
    """Change what is given (not None). Bots already scheduled keep their configuration."""
    mailbox = await get_mailbox(ctx, workspace_id, mailbox_id)
    changed = replace(mailbox, updated_at=ctx.clock.now())
    if address is not None:
        changed.address = validate_address(address)
    if bot_config is not None:
        changed.bot_config = dict(bot_config)
    if allowed_senders is not None:
        changed.allowed_senders = validate_allowed_senders(list(allowed_senders))
    if send_replies is not None:
        changed.send_replies = send_replies
    if not await ctx.store.save_mailbox(changed):
        raise NotFound("bot mailbox", mailbox_id)
    return changed


async def delete_mailbox(ctx: Context, workspace_id: UUID, mailbox_id: UUID) -> None:
    """Delete the mailbox and what it received; the bots its invites scheduled are released
    (deleted, unless a calendar or another mailbox wants the same meeting)."""
    mailbox = await get_mailbox(ctx, workspace_id, mailbox_id)
    for invite in await ctx.store.invites_holding_bots(mailbox.id):
        for held in invite.bots:
            await event_bots.detach_bot(ctx, workspace_id, ref=held.ref)
    if not await ctx.store.delete_mailbox(workspace_id, mailbox_id):
        raise NotFound("bot mailbox", mailbox_id)


async def list_invites(
    ctx: Context,
    workspace_id: UUID,
    mailbox_id: UUID,
    before: tuple[datetime, UUID] | None,
    limit: int,
) -> list[Invite]:
    """What the mailbox received, most recently changed first."""
    await get_mailbox(ctx, workspace_id, mailbox_id)
    return await ctx.store.list_invites(workspace_id, mailbox_id, before, limit)


async def find_mailbox(ctx: Context, address: str) -> Mailbox | None:
    """The mailbox mail for ``address`` goes to: case-insensitive, ``mailto:`` or not; a
    plus-tagged address (``bot+x@…``) goes to the untagged mailbox unless one has it exactly."""
    normal = normalise_address(address)
    if not normal:
        return None
    found = await ctx.store.mailbox_by_address(normal)
    if found is None and without_tag(normal) != normal:
        found = await ctx.store.mailbox_by_address(without_tag(normal))
    return found


# -- receiving mail --------------------------------------------------------------------------------
async def receive_message(
    ctx: Context,
    raw: bytes,
    envelope_from: str | None,
    recipients: Sequence[str],
    auth_results: AuthResults | None = None,
) -> list[Receipt]:
    """Judge one message for each mailbox among ``recipients`` and apply what it says.

    ``envelope_from`` is the SMTP ``MAIL FROM`` (or what stands for it over IMAP);
    ``auth_results`` the sender checks already made, if any — otherwise, when the operator
    configured ``SUMMON_MAIL_AUTHSERV_ID``, they are read from the message's
    ``Authentication-Results``. Unknown recipients are skipped. Raises only for infrastructure
    failures (see the module docstring)."""
    mailboxes: list[Mailbox] = []
    for address in recipients:
        mailbox = await find_mailbox(ctx, address)
        if mailbox is not None and all(m.id != mailbox.id for m in mailboxes):
            mailboxes.append(mailbox)
    if not mailboxes:
        return []
    if len(raw) > PARSE_INLINE_BYTES:
        message = await asyncio.to_thread(read_message, raw)  # keep the event loop responsive
    else:
        message = read_message(raw)
    settings = ctx.settings
    if auth_results is None and settings.mail_authserv_id:
        auth_results = authentication_results(
            message.authentication_results, settings.mail_authserv_id
        )
    receipts: list[Receipt] = []
    for mailbox in mailboxes:
        receipts.extend(await _receive(ctx, mailbox, message, envelope_from, auth_results))
    for r in receipts:
        level = logging.WARNING if r.status == REFUSED else logging.INFO
        log.log(
            level,
            "mail %s from %s to %s: %s %s%s",
            message.message_id or "(no Message-ID)",
            normalise_address(envelope_from or "") or "<>",
            r.mailbox_id,
            r.uid or "-",
            r.status,
            f" ({r.reason})" if r.reason else "",
        )
    return receipts


async def _receive(
    ctx: Context,
    mailbox: Mailbox,
    message: MailMessage,
    envelope_from: str | None,
    auth: AuthResults | None,
) -> list[Receipt]:
    sender = normalise_address(envelope_from or "")
    if not message.calendars:
        reason = "no calendar in the message" + (
            f" ({'; '.join(message.problems)})" if message.problems else ""
        )
        return [Receipt(mailbox.id, None, IGNORED, reason)]
    items, why_none = series_items(message)
    if not items:
        return [Receipt(mailbox.id, None, IGNORED, why_none)]
    envelope_refusal = None
    relays = [r.strip() for r in ctx.settings.mail_calendar_relays.split(",") if r.strip()]
    identity = envelope_identity(envelope_from, message, relays)
    if not sender_allowed(mailbox.allowed_senders, identity):
        if identity != sender:
            envelope_refusal = (
                f"envelope sender {sender} (a calendar relay) sends for "
                f"{identity or '(no From:)'}, who is not an allowed sender"
            )
        else:
            envelope_refusal = f"envelope sender {sender or '<>'} is not an allowed sender"
    receipts = []
    required = [r for r in ctx.settings.mail_require_auth.split(",") if r.strip()]
    for item in items:
        organizer = item.organizer or message.from_address
        refusal = envelope_refusal
        if refusal is None and not sender_allowed(mailbox.allowed_senders, organizer):
            refusal = f"organizer {organizer or '(none)'} is not an allowed sender"
        if refusal is None:
            refusal = authentication_problem(required, auth, organizer, mailbox.allowed_senders)
        if refusal is not None:
            await _refuse(ctx, mailbox, item, sender, message, refusal)
            receipts.append(Receipt(mailbox.id, item.uid, REFUSED, refusal))
            continue
        receipts.append(await _apply(ctx, mailbox, item, sender, message))
    return receipts


async def _refuse(
    ctx: Context, mailbox: Mailbox, item: SeriesItem, sender: str, message: MailMessage, reason: str
) -> None:
    """Record the refusal — only where the mailbox knows nothing of the series yet: a
    stranger must not be able to overwrite (or even touch) an invitation someone allowed sent."""
    current = await ctx.store.get_invite(mailbox.id, item.uid)
    if current is not None:
        return
    if await ctx.store.count_invites(mailbox.id, REFUSED) >= MAX_REFUSALS_KEPT:
        return  # a flood of strangers' mail must not fill the database: logged only
    placeholder = refusal_placeholder(
        item,
        mailbox_id=mailbox.id,
        workspace_id=mailbox.workspace_id,
        now=ctx.clock.now(),
        sender=sender,
        message_id=message.message_id,
        status=REFUSED,
        reason=reason,
    )
    try:
        await ctx.store.save_invite(placeholder, None)
    except StaleVersion:
        pass  # someone recorded this series meanwhile: theirs stands


async def _apply(
    ctx: Context, mailbox: Mailbox, item: SeriesItem, sender: str, message: MailMessage
) -> Receipt:
    resync = False
    for _ in range(SAVE_ROUNDS):
        now = ctx.clock.now()
        current = await ctx.store.get_invite(mailbox.id, item.uid)
        judgement: Judgement = judge(
            current,
            item,
            now=now,
            mailbox_id=mailbox.id,
            workspace_id=mailbox.workspace_id,
            sender=sender,
            message_id=message.message_id,
            body_text=message.body_text,
        )
        state = judgement.state
        if state is None:
            if resync and current is not None:
                state = current  # we attached for a version that lost: restore the winner's bots
            else:
                return Receipt(
                    mailbox.id, item.uid, current.status if current else IGNORED, judgement.outcome
                )
        synced = await _sync_bots(ctx, mailbox, state, now)
        try:
            await ctx.store.save_invite(synced, current.version if current is not None else None)
        except StaleVersion:
            resync = True
            continue
        if judgement.new_version and synced.status == SCHEDULED:
            await _courtesy_reply(ctx, mailbox, synced, item)
        return Receipt(mailbox.id, item.uid, synced.status, synced.reason or judgement.outcome)
    raise StaleVersion(item.uid, -1)


async def _sync_bots(ctx: Context, mailbox: Mailbox, invite: Invite, now: datetime) -> Invite:
    """Attach a bot to every occurrence of ``invite`` that wants one, release the bots of
    occurrences that no longer do; the invite with its bots, status, reason and next check."""
    settings = ctx.settings
    horizon = now + (
        timedelta(days=settings.mail_window_days) if invite.recurring else ONE_OFF_HORIZON
    )
    wanted, why_none = wanted_occurrences(invite, now, horizon)
    held = {b.ref: b for b in invite.bots}
    bots: list[HeldBot] = []
    failures: list[str] = []
    late = 0
    wanted_refs: set[str] = set()
    for w in wanted:
        ref = _ref(mailbox.id, w)
        wanted_refs.add(ref)
        if w.occurrence.start <= now and ref not in held:
            late += 1  # started before we heard of it: no bot barges in late
            continue
        link = w.occurrence.meeting_url or ""
        try:
            bot_id = await event_bots.attach_bot(
                ctx,
                mailbox.workspace_id,
                ref=ref,
                dedup_key=default_dedup_key(w.occurrence.start, link),
                occurrence=w.occurrence,
                bot_config=mailbox.bot_config,
            )
        except (RuleViolation, FieldInvalid) as exc:
            failures.append(f"{w.occurrence.start.isoformat()}: {exc}")
            continue
        bots.append(HeldBot(ref, bot_id, w.occurrence.start, w.occurrence.end))
    for ref, old in held.items():
        if ref in wanted_refs or old.end <= now:
            continue  # still wanted (attached above), or over: history
        await event_bots.detach_bot(ctx, mailbox.workspace_id, ref=ref)
    out = replace(invite, bots=bots, updated_at=now, version=invite.version + 1)
    if invite.status in (CANCELLED, REFUSED) or invite.calendar is None:
        out.next_check_at = None
        return out
    failed = "could not schedule " + "; ".join(failures) if failures else None
    if bots:
        out.status, out.reason = SCHEDULED, _cut(failed)
    elif failures:
        out.status, out.reason = IGNORED, _cut(failed)
    elif late:
        out.status, out.reason = (
            IGNORED,
            "the meeting had already started when the invitation arrived",
        )
    elif invite.recurring and (why_none or "").startswith("no occurrence ahead"):
        out.status, out.reason = SCHEDULED, why_none  # the series goes on beyond the window
    else:
        out.status, out.reason = IGNORED, why_none
    if failures:
        out.next_check_at = now + RETRY_AFTER
    elif invite.recurring:
        out.next_check_at = now + timedelta(seconds=settings.mail_check_interval_s)
    else:
        out.next_check_at = None
    return out


def _cut(text: str | None) -> str | None:
    return text[:2000] if text else None


def _ref(mailbox_id: UUID, wanted: Wanted) -> str:
    ref = f"mailbox:{mailbox_id}:{wanted.ref_suffix}"
    if len(ref.encode()) <= MAX_REF_BYTES:
        return ref
    return f"mailbox:{mailbox_id}:sha256:{hashlib.sha256(wanted.ref_suffix.encode()).hexdigest()}"


async def _courtesy_reply(ctx: Context, mailbox: Mailbox, invite: Invite, item: SeriesItem) -> None:
    """Tell the organizer the bot accepted (iMIP REPLY), when the mailbox asks for it and the
    operator configured a relay. Best effort: a failure is logged, never raised."""
    if not (mailbox.send_replies and ctx.settings.smtp_relay_url and invite.organizer):
        return
    from summon.mail import reply  # the relay client is only loaded by those who send replies

    try:
        await reply.send_accept(
            ctx.settings.smtp_relay_url, mailbox.address, invite, ctx.clock.now()
        )
    except Exception as exc:  # a relay problem must not undo or delay the scheduling
        log.warning("could not send the REPLY for %s to %s: %s", invite.uid, invite.organizer, exc)


# -- the periodic pass -----------------------------------------------------------------------------
async def extend_recurring_invites(ctx: Context, limit: int = 200) -> int:
    """Schedule occurrences that entered the window since the last look (recurring invites),
    retry attaches that failed; how many invites were looked at. Run periodically; safe on
    several nodes at once (attaching is idempotent, saving is fenced)."""
    seen: set[UUID] = set()
    while True:
        now = ctx.clock.now()
        wanted = limit + len(seen)  # the ones that failed this pass may still be due
        rows = await ctx.store.due_invites(now, wanted)
        fresh = [i for i in rows if i.id not in seen][:limit]
        for invite in fresh:
            seen.add(invite.id)
            try:
                await _recheck(ctx, invite, now)
            except Exception:  # one bad invite must not hold up the others
                log.exception(
                    "could not re-check invite %s of mailbox %s", invite.uid, invite.mailbox_id
                )
        if not fresh or len(rows) < wanted:
            return len(seen)


async def _recheck(ctx: Context, invite: Invite, now: datetime) -> None:
    mailbox = await ctx.store.get_mailbox(invite.workspace_id, invite.mailbox_id)
    if mailbox is None:
        return
    for _ in range(SAVE_ROUNDS):
        current = await ctx.store.get_invite(invite.mailbox_id, invite.uid)
        if current is None or current.next_check_at is None or current.next_check_at > now:
            return
        synced = await _sync_bots(ctx, mailbox, current, now)
        try:
            await ctx.store.save_invite(synced, current.version)
        except StaleVersion:
            continue
        return
