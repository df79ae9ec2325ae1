"""The Kubernetes operator: MCPServer, MCPAccessGrant and MCPAgentSession reconciliation (kopf).

`plan.py` decides (pure), `reconcile.py` reads and applies through the Kubernetes API, `handlers.py`
connects kopf events to it, `policy_watch.py` is the gateway sidecar's ConfigMap watcher.
Importing this package does not import kopf.
"""
