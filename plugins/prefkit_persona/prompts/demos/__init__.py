"""Few-shot demonstrations for persona inference, one file per split (package data)."""
