"""Turning a folder's knowledge base text into an AnalysisResult (pure).

The knowledge base has sections headed ``KEY CONCEPTS:`` (one concept a line, up to
``CONCEPT DETAILS:``), ``KEY TERMS GLOSSARY:`` (``term: definition`` lines) and ``FILES:`` (one file
name a line, up to ``FILE METADATA:``). The whole text is the analysis text.
"""

from __future__ import annotations

import re
from typing import Final

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
