"""Dataset splits shipped with the persona plugin (see README.md here for origin and licence)."""
