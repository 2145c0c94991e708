"""Built-in trainers (filled in by the trainers layer)."""
