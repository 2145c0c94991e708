"""Built-in judges (filled in by the judges layer)."""
