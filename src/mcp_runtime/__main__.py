"""`python -m mcp_runtime` runs the CLI (tests use it so they need no console script)."""

from mcp_runtime.cli.app import main

if __name__ == "__main__":
    main()
