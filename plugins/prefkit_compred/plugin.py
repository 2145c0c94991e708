"""Hook implementations of the ComPreD plugin (under construction: registers nothing yet)."""

from __future__ import annotations
