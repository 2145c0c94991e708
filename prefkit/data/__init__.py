"""Preference records and the dataset sources that produce them."""

from .records import PreferenceRecord, messages, parse_dialogue, text_of
from .sources import (
    DatasetSource,
    DiskSource,
    FileSource,
    HubSource,
    NamedSource,
    get_source,
    load_records,
    load_rows,
    parse_column_map,
    read_table,
)

__all__ = [
    "PreferenceRecord", "messages", "parse_dialogue", "text_of",
    "DatasetSource", "DiskSource", "FileSource", "HubSource", "NamedSource",
    "get_source", "load_records", "load_rows", "parse_column_map", "read_table",
]
