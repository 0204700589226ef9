"""Folders, pure: turning a folder's knowledge base text into an AnalysisResult, and how a folder
is stored (a hash ``rs:{u:<u>}:f:<folder_id>``).

The knowledge base has sections headed ``KEY CONCEPTS:`` (one concept a line, up to
``CONCEPT DETAILS:``), ``KEY TERMS GLOSSARY:`` (``term: definition`` lines) and ``FILES:`` (one file
name a line, up to ``FILE METADATA:``). The whole text is the analysis text.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Final

from .codec import CorruptRecord, _encoder, iso, parse_time
from .models import AnalysisResult
from .records import Folder

_HEADER = re.compile(r"^[A-Z][A-Z0-9 _/&()-]*:$")
_BULLET = re.compile(r"^(?:[-*\u2022]|\d+[.)])\s+")
_CONCEPTS: Final = "KEY CONCEPTS:"
_TERMS: Final = "KEY TERMS GLOSSARY:"
_FILES: Final = "FILES:"


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if _HEADER.match(line):
            current = sections.setdefault(line, [])
            continue
        if current is not None:
            current.append(_BULLET.sub("", line))
    return sections


def parse_knowledge_base(text: str, vector_store_id: str | None) -> AnalysisResult:
    """The AnalysisResult of a knowledge base text (``vector_store_id`` None becomes "")."""
    sections = _sections(text)
    terms: dict[str, str] = {}
    for line in sections.get(_TERMS, []):
        term, sep, definition = line.partition(":")
        if sep and term.strip():
            terms[term.strip()] = definition.strip()
    return AnalysisResult(
        analysis_text=text,
        key_concepts=sections.get(_CONCEPTS, []),
        key_terms=terms,
        file_names=sections.get(_FILES, []),
        vector_store_id=vector_store_id or "",
    )


def analysis_from_folder(folder: Folder) -> AnalysisResult | None:
    """The folder's AnalysisResult, or None when it has no knowledge base text."""
    if not folder.knowledge_base.strip():
        return None
    return parse_knowledge_base(folder.knowledge_base, folder.vector_store_id)


def folder_fields(folder: Folder, user_id: str, now: dt.datetime) -> list[tuple[str, str | bytes]]:
    """The hash fields of a stored folder, including the AnalysisResult derived from it."""
    analysis = analysis_from_folder(folder)
    pairs: list[tuple[str, str | bytes]] = [
        ("id", str(folder.id)),
        ("user_id", user_id),
        ("name", folder.name),
        ("knowledge_base", folder.knowledge_base),
        ("created_at", iso(folder.created_at or now)),
        ("updated_at", iso(now)),
    ]
    if folder.vector_store_id is not None:
        pairs.append(("vector_store_id", folder.vector_store_id))
    if analysis is not None:
        pairs.append(("analysis", _encoder.encode(analysis)))
    return pairs


def folder_from_fields(fields: Mapping[bytes, bytes], user_id: str, folder_id: str) -> Folder:
    """A stored folder hash as a Folder of ``user_id``; raises CorruptRecord."""
    try:
        if fields[b"user_id"].decode() != user_id:
            raise CorruptRecord("folder belongs to another user")
        vector = fields.get(b"vector_store_id")
        return Folder(
            id=uuid.UUID(folder_id),
            name=fields[b"name"].decode(),
            vector_store_id=vector.decode() if vector is not None else None,
            knowledge_base=fields.get(b"knowledge_base", b"").decode(),
            created_at=parse_time(fields[b"created_at"]),
            updated_at=parse_time(fields[b"updated_at"]),
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, CorruptRecord):
            raise
        raise CorruptRecord(f"bad folder record: {exc!r}") from exc
