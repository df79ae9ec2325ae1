"""Settings of the platform API: where its data lives and the limits it enforces."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

DATA_DIR_SHOWN = Path("~/.mcpruntime/data")
"""The default data directory as `--help` shows it (unexpanded, the same on every machine)."""
DEFAULT_DATA_DIR = DATA_DIR_SHOWN.expanduser()
DATABASE_URL_ENV = "MCP_RUNTIME_DATABASE_URL"
ADMIN_EMAIL_ENV = "MCP_RUNTIME_ADMIN_EMAIL"
ADMIN_PASSWORD_ENV = "MCP_RUNTIME_ADMIN_PASSWORD"
ADMIN_PASSWORD_FILE = "admin-password"
"""The generated first admin password, in the data directory (0600); `up` prints it once."""
ANALYTICS_URL_ENV = "MCP_RUNTIME_ANALYTICS_URL"
INGEST_API_KEY_ENV = "MCP_RUNTIME_INGEST_API_KEY"
NATS_URL_ENV = "MCP_RUNTIME_NATS_URL"
PUBLIC_URL_ENV = "MCP_RUNTIME_PUBLIC_URL"
SERVERS_URL_ENV = "MCP_RUNTIME_SERVERS_URL"
ORG_NAMESPACE = "mcp-servers-org"
PUBLIC_NAMESPACE = "mcp-servers-public"
TEAM_NAMESPACE_PREFIX = "mcp-team-"


@dataclass
class PlatformSettings:
    """Everything `create_app` needs. `from_env` fills the database URL and first admin from the environment."""

    data_dir: Path = field(default_factory=lambda: DEFAULT_DATA_DIR)
    database_url: str | None = None  # None: SQLite file in data_dir
    admin_email: str = "admin@example.com"
    admin_password: str | None = None  # None: generated and written to data_dir/ADMIN_PASSWORD_FILE (0600)
    access_token_ttl: timedelta = timedelta(minutes=15)
    refresh_token_ttl: timedelta = timedelta(days=30)
    max_body_bytes: int = 1024 * 1024
    login_max_failures: int = 5
    login_window: timedelta = timedelta(minutes=5)
    session_default_ttl: timedelta = timedelta(hours=1)
    session_max_ttl: timedelta = timedelta(hours=24)
    run_migrations: bool = True
    # MCP authorization (OAuth 2.1, platform/oauth): on when the platform knows the URL clients reach it at
    public_url: str | None = None  # e.g. http://127.0.0.1:8080 (`up` sets it); $MCP_RUNTIME_PUBLIC_URL
    # where servers are reached when not at public_url (https://mcp.<domain>); $MCP_RUNTIME_SERVERS_URL
    servers_url: str | None = None
    oauth_authorization_ttl: timedelta = timedelta(hours=24)  # one consent lasts this long (its session)
    oauth_registrations_per_minute: int = 10  # dynamic client registrations per client address
    registry_host: str | None = None  # None: $MCP_RUNTIME_REGISTRY, else the bundled registry's address
    # analytics (Sentinel): where events are stored, who may send them, and the optional NATS pipeline
    analytics_url: str | None = None  # None: SQLite file analytics.db in data_dir (see sentinel.open_store)
    ingest_api_key: str | None = None  # None: one is generated at start (file data_dir/ingest-api-key)
    ingest_max_body_bytes: int = 16 * 1024 * 1024
    nats_url: str | None = None  # set: ingest publishes to JetStream, a background writer stores
    nats_writer: bool = True  # run the JetStream -> store writer in this process (NATS mode)
    nats_stream: str = "MCP_EVENTS"
    nats_subject_prefix: str = "mcp.events"
    checkpoint_interval: float = 60.0  # seconds between signed audit checkpoints; $MCP_RUNTIME_CHECKPOINT_INTERVAL

    @classmethod
    def from_env(cls, data_dir: Path | str | None = None, **overrides: object) -> PlatformSettings:
        settings = cls(**overrides)  # type: ignore[arg-type]
        if data_dir is not None:
            settings.data_dir = Path(data_dir).expanduser()
        if settings.database_url is None and os.environ.get(DATABASE_URL_ENV):
            settings.database_url = os.environ[DATABASE_URL_ENV]
        if os.environ.get(ADMIN_EMAIL_ENV):
            settings.admin_email = os.environ[ADMIN_EMAIL_ENV]
        if settings.admin_password is None and os.environ.get(ADMIN_PASSWORD_ENV):
            settings.admin_password = os.environ[ADMIN_PASSWORD_ENV]
        for attr, env in (("analytics_url", ANALYTICS_URL_ENV), ("ingest_api_key", INGEST_API_KEY_ENV),
                          ("nats_url", NATS_URL_ENV), ("nats_url", "MCP_SENTINEL_NATS_URL"),
                          ("public_url", PUBLIC_URL_ENV), ("servers_url", SERVERS_URL_ENV)):
            if getattr(settings, attr) is None and os.environ.get(env):
                setattr(settings, attr, os.environ[env])
        interval = os.environ.get("MCP_RUNTIME_CHECKPOINT_INTERVAL", "").strip()
        if interval:
            try:
                settings.checkpoint_interval = float(interval)
            except ValueError:
                raise ValueError(f"MCP_RUNTIME_CHECKPOINT_INTERVAL must be a number of seconds, got {interval!r}") \
                    from None
        clickhouse = os.environ.get("MCP_SENTINEL_CLICKHOUSE_URL")  # the Helm chart's name, http(s)://
        if settings.analytics_url is None and clickhouse:
            settings.analytics_url = clickhouse_store_url(clickhouse)
        return settings


def clickhouse_store_url(url: str) -> str:
    """`http(s)://user:pw@host:8123/db` (a ClickHouse HTTP endpoint) as the analytics store URL
    `clickhouse(s)://...` that `open_event_store` takes; other URLs unchanged."""
    for http, scheme in (("http://", "clickhouse://"), ("https://", "clickhouses://")):
        if url.startswith(http):
            return scheme + url[len(http):]
    return url
