"""Classification sidecar for valkey-agentic (see README.md)."""
