"""The `mcp-runtime` command.

`app.py` is the root command; `commands.py` is the one list of command groups. Each group lives in the
module named after it (`mcp-runtime setup` in setup.py, `mcp-runtime sentinel ...` in sentinel.py), or,
for the two large groups, in a package named after it (`server/`, `access/`) that assembles the group
once in its `__init__.py`. `common/` holds the plumbing the groups share (errors, output, flags, files,
`.mcp` metadata, platform and Kubernetes helpers) and no commands. `reference.py` renders docs/cli.md.
"""
