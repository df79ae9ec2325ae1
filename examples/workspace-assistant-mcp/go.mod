module workspace-assistant-mcp

go 1.19
