"""The composition root: wires the packages below it into the processes that run.

- `embedded.EmbeddedPlatform`: `mcp-runtime up`, the API, dashboard, gateway and a runtime in one process;
- `podman_stack.PodmanStack`: what `up --runtime podman` adds (bundled registry, sidecar image, podman runtime);
- `site.create_site`: the API and the dashboard together (`mcp-runtime platform serve`).

Nothing below this package imports it (docs/architecture.md, enforced by tests/unit/test_architecture.py).
"""
