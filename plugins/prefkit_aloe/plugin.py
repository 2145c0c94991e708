"""Hook implementations of the ALOE plugin (under construction: registers nothing yet)."""

from __future__ import annotations
