"""The reference news demo's Python agents, rewritten to drive the libagentic.so Valkey module."""
