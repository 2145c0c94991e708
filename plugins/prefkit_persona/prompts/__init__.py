"""Prompt templates of the persona plugin (package data: edit the .txt/.yaml files)."""
