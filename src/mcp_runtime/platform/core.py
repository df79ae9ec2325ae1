"""The platform's services wired together over one store: what `create_app` serves and `up` reuses."""

from __future__ import annotations

import logging
from pathlib import Path

from mcp_runtime.platform.access import AccessService
from mcp_runtime.platform.analytics import AnalyticsService
from mcp_runtime.platform.approvals import ApprovalService
from mcp_runtime.platform.checkpoints import ChainHeads, Checkpointer
from mcp_runtime.platform.hooks import NoRuntime, PolicyPublisher, RuntimeHooks
from mcp_runtime.platform.identity import IdentityService, load_keyring
from mcp_runtime.platform.ingest import IngestKeys, IngestService
from mcp_runtime.platform.oauth.service import OAuthService
from mcp_runtime.platform.pinning import ToolReview
from mcp_runtime.platform.policies import PolicyCompiler
from mcp_runtime.platform.repository import ResourceRepository
from mcp_runtime.platform.servers import ServerService
from mcp_runtime.platform.settings import PlatformSettings
from mcp_runtime.platform.simulate import SimulationService
from mcp_runtime.platform.virtual import VirtualServerService
from mcp_runtime.sentinel.open_store import open_event_store
from mcp_runtime.sentinel.store import EventStore
from mcp_runtime.store import ControlPlaneStore
from mcp_runtime.store.secrets import SecretFiles
from mcp_runtime.store.sql import SqlStore, sqlite_url

log = logging.getLogger("mcp_runtime.platform")


class Platform:
    """Opens the store (running migrations), loads the signing keys, creates the first admin,
    and compiles every server's policy so subscribers start with a complete picture.

    Analytics: `events` is the event store (`settings.analytics_url`, default `data_dir/analytics.db`),
    `ingest_keys.local_key` the key an in-process gateway's Emitter sends, `ingest` the write path
    (`await ingest.start()` / `await ingest.close()` around serving when NATS is configured)."""

    def __init__(self, settings: PlatformSettings, *, store: ControlPlaneStore | None = None,
                 hooks: RuntimeHooks | None = None, publisher: PolicyPublisher | None = None,
                 event_store: EventStore | None = None) -> None:
        self.settings = settings
        self._owns_store = store is None
        if store is None:
            url = settings.database_url
            if url is None:
                Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
                url = sqlite_url(Path(settings.data_dir))
            store = SqlStore.open(url, run_migrations=settings.run_migrations)
        self.store = store
        self.keyring = load_keyring(store)
        self.identity = IdentityService(store, self.keyring, settings)
        self.publisher = publisher or PolicyPublisher()
        self.hooks: RuntimeHooks = hooks or NoRuntime()
        self.repo = ResourceRepository(store)
        self.policies = PolicyCompiler(self.repo, self.publisher)
        self.servers = ServerService(store, self.repo, self.policies, self.hooks)
        self.virtual = VirtualServerService(store, self.repo, self.policies)
        self.tools = ToolReview(self.repo, self.servers, self.policies)
        self.approvals = ApprovalService(store)
        """Tool calls gateways hold for a person's approval (in memory, bounded)."""
        self.access = AccessService(store, self.repo, self.servers, self.policies, self.keyring, settings)
        self._owns_events = event_store is None
        if event_store is None:
            event_store = open_event_store(settings.analytics_url or str(Path(settings.data_dir) / "analytics.db"))
        self.events = event_store
        self.ingest_keys = IngestKeys(store, settings)
        self.chain_heads = ChainHeads()
        self.ingest = IngestService(event_store, settings, self.chain_heads)
        self.checkpoints = Checkpointer(store, self.keyring, self.chain_heads, settings.checkpoint_interval)
        """Signs the chains' heads into the audit log every `checkpoint_interval` (started with the ingest)."""
        self.analytics = AnalyticsService(store, self.repo, event_store, self.policies.document)
        self.oauth: OAuthService | None = None
        if settings.public_url:
            self.oauth = OAuthService(store, self.access, settings.public_url, settings.access_token_ttl,
                                      settings.oauth_authorization_ttl, settings.servers_url)
        self.simulation = SimulationService(store, self.servers, self.access, self.policies, event_store)
        self.secrets = SecretFiles(Path(settings.data_dir) / "secrets")
        """Credentials the runtime's gateway hands on (0600 files; see store/secrets.py)."""
        self.identity.bootstrap_admin()
        self.policies.recompile_all()

    def set_runtime(self, hooks: RuntimeHooks) -> None:
        """Attach the runtime that runs servers (it hears of every later server change)."""
        self.hooks = hooks
        self.servers.hooks = hooks

    def close(self) -> None:
        if self._owns_events:
            self.events.close()
        if self._owns_store:
            self.store.close()
