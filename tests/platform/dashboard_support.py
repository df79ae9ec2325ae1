"""A live platform serving the API under /api/v1 and the dashboard at / (`create_site`, as `platform serve`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import uvicorn
from platform_support import free_port

from mcp_runtime.compose.site import create_site
from mcp_runtime.platform import Platform, PlatformSettings


@dataclass
class LiveSite:
    url: str
    platform: Platform


@contextmanager
def serve_site(settings: PlatformSettings) -> Iterator[LiveSite]:
    platform = Platform(settings)
    app = create_site(platform)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name=f"site-{port}", daemon=True)
    thread.start()
    try:
        for _ in range(500):
            if server.started or not thread.is_alive():
                break
            time.sleep(0.01)
        assert server.started, "the platform did not start"
        yield LiveSite(url=f"http://127.0.0.1:{port}", platform=platform)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@contextmanager
def login_client(site: LiveSite, email: str, password: str) -> Iterator[httpx.Client]:
    """An httpx client signed in to the dashboard through its login form (cookies kept)."""
    with httpx.Client(base_url=site.url, timeout=30, follow_redirects=False) as client:
        page = client.get("/login")
        answer = client.post("/login", data={"email": email, "password": password, "csrf": csrf_of(page.text),
                                             "next": "/analytics"})
        assert answer.status_code == 303, answer.text
        yield client


def csrf_of(html: str) -> str:
    return html.split('name="csrf" value="', 1)[1].split('"', 1)[0]
