"""Built-in backends (filled in by the backends layer)."""
