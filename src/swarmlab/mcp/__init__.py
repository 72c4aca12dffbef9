"""An MCP server exposing the SDK to agent harnesses."""
