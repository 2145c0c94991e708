"""Implementations of the core CLI commands (imported lazily by the command functions)."""
