"""JSON documents read with a nesting limit, so a deep document is bad input and never a RecursionError.

``json.loads`` recurses once per nested array or object: a document nested 50,000 deep raises
``RecursionError`` (a 500), and one nested a few hundred deep parses but then exhausts the stack of
whatever walks it next (the CycloneDX schema validator, the component walk). :func:`loads` refuses
both with an :class:`~ringfence.errors.InputError` naming the document and the limit.

The depth is checked without recursion, before anything else reads the document.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any, Final

from ringfence.errors import InputError
from ringfence.runtime import collector_paused

__all__ = ["MAX_DEPTH", "check_depth", "kind_of", "loads", "paused_gc"]

#: Deepest nesting of arrays and objects accepted in an uploaded JSON document. Real SBOMs, OSV
#: records, inventories and osquery results nest well under 30.
MAX_DEPTH: Final = 64


def _too_deep(location: str, max_depth: int) -> InputError:
    return InputError.single("document", f"nests arrays/objects more than {max_depth} levels deep",
                             expected=f"a JSON document nested at most {max_depth} levels", location=location)


def check_depth(doc: Any, *, location: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise InputError when ``doc`` (already parsed) nests deeper than ``max_depth``; iterative, level by level."""
    level = [doc] if isinstance(doc, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > max_depth:
            raise _too_deep(location, max_depth)
        below: list[Any] = []
        for value in level:
            children = value.values() if type(value) is dict else value
            below.extend([c for c in children if type(c) is dict or type(c) is list])
        level = below


def loads(data: str | bytes, *, location: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON like ``json.loads`` and refuse documents nested deeper than ``max_depth``.

    Raises ``ValueError`` for text that is not JSON (as ``json.loads`` does), so callers keep their
    own messages for that; depth is always an InputError.
    """
    try:
        with paused_gc():
            doc = json.loads(data)
    except RecursionError as e:
        raise _too_deep(location, max_depth) from e
    check_depth(doc, location=location, max_depth=max_depth)
    return doc


def kind_of(value: Any) -> str:
    """What a parsed JSON/YAML value is, in the document's words (never a Python type name)."""
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return "a value of an unsupported kind"


def paused_gc() -> contextlib.AbstractContextManager[None]:
    """Pause the cyclic garbage collector while a large document is read into objects.

    Every container allocated counts towards a collection, and the collections of the oldest generation
    walk everything alive: reading a 47 MB SBOM spent four fifths of its time in them (5.2 s with the
    collector, 1.1 s without). Nothing read here forms cycles, so nothing is lost by collecting later.
    The pause is :func:`ringfence.runtime.collector_paused`, the one switch of the collector, so that it
    nests with the simulator's and the assessment's pauses in the API's thread pool.
    """
    return collector_paused()
