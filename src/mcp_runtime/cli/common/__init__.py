"""Plumbing every command group shares; no commands live here.

`errors` (CliError: one line, exit 1), `output` (tables and `-o json|yaml`), `flags` (flag values to typed
values), `files` (local YAML read and written atomically), `metadata` (`.mcp/servers.yaml`), `api` (platform
API lookups), `kube` (Kubernetes connection flags and client), `serving` (ports and logging of long-lived
servers).
"""
