"""The one YAML loader of ringfence: safe types only, and bounded before anything is built.

Every YAML the project reads (plans, gate policies, services, scenarios, simulation policies,
runbooks, OSV records) goes through :func:`load_yaml`.  PyYAML's ``safe_load`` builds only plain
types, but it does not bound what a small document can *become*: a 600-byte "billion laughs"
document of nested aliases expands to billions of nodes as soon as anything walks it, and a
document nested 20,000 deep exhausts the recursion limit.  So, before a single object is built,
the document's event stream (libyaml's parser, no composing) is checked against
:class:`YamlLimits`:

* **size**: at most ``max_bytes`` of text;
* **depth**: collections nested at most ``max_depth`` deep;
* **expanded nodes**: at most ``max_nodes`` nodes counting every alias as the whole subtree it
  stands for (so harmless anchors still work, a bomb is refused while it is still 600 bytes);
* **no recursive aliases** (an alias inside the collection it names would build a cycle).

Only then is it loaded with libyaml's safe (or base, strings-only) loader.  Every refusal is an
:class:`~ringfence.errors.InputError` that names the document (``what``, ``location``), the limit and
the value found.  Pure: text in, data out; no files, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import yaml

from ringfence.errors import InputError

__all__ = ["DEFAULT_LIMITS", "YamlLimits", "load_yaml"]

_SAFE: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_BASE: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)  # every scalar stays a string ("1.10" is not 1.1)


@dataclass(frozen=True, slots=True)
class YamlLimits:
    """Bounds on one YAML document; the defaults fit every file ringfence ships with room to spare."""

    max_bytes: int = 32 * 1024 * 1024
    max_depth: int = 64
    max_nodes: int = 2_000_000


DEFAULT_LIMITS = YamlLimits()


def _refuse(what: str, location: str, message: str, expected: str) -> InputError:
    return InputError.single(what, message, expected=expected, location=location)


def _size(text: str | bytes) -> int:
    if isinstance(text, bytes):
        return len(text)
    return len(text.encode("utf-8"))


def _check_events(text: str | bytes, what: str, location: str, limits: YamlLimits) -> None:
    """Walk the event stream once: depth, expanded node count, aliases."""
    total = 0
    anchors: dict[str, int] = {}  # anchor -> nodes in its subtree (once closed)
    open_frames: list[tuple[str | None, int]] = []  # (anchor, total when the collection opened)
    open_anchors: set[str] = set()
    for event in yaml.parse(text, Loader=_SAFE):
        if isinstance(event, yaml.AliasEvent):
            name = str(event.anchor)
            if name in open_anchors:
                raise _refuse(what, location, f"has a recursive alias *{name} (inside the node it names)",
                              "aliases only to nodes that are complete")
            total += anchors.get(name, 1)
        elif isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent)):
            total += 1
            open_frames.append((event.anchor, total - 1))
            if event.anchor is not None:
                open_anchors.add(event.anchor)
            if len(open_frames) > limits.max_depth:
                line = f" (at line {event.start_mark.line + 1})" if event.start_mark is not None else ""
                raise _refuse(what, location, f"is nested more than {limits.max_depth} deep{line}",
                              f"at most {limits.max_depth} levels of nested lists and mappings")
        elif isinstance(event, (yaml.SequenceEndEvent, yaml.MappingEndEvent)):
            anchor, before = open_frames.pop()
            if anchor is not None:
                anchors[anchor] = total - before
                open_anchors.discard(anchor)
        elif isinstance(event, yaml.ScalarEvent):
            total += 1
            if event.anchor is not None:
                anchors[event.anchor] = 1
        if total > limits.max_nodes:
            raise _refuse(what, location, f"expands to more than {limits.max_nodes:,} nodes"
                          f"{' through its aliases' if anchors else ''}",
                          f"at most {limits.max_nodes:,} nodes with every alias expanded (no alias bombs)")


def load_yaml(text: str | bytes, *, what: str, location: str = "", strings_only: bool = False,
              limits: YamlLimits = DEFAULT_LIMITS, expected: str = "valid YAML") -> Any:
    """Parse one YAML document within ``limits``; InputError names ``what``/``location`` and the limit.

    ``strings_only`` keeps every scalar a string (YAML 1.1 would read ``1.10`` as the float 1.1).
    """
    if len(text) > limits.max_bytes or _size(text) > limits.max_bytes:  # characters <= bytes: a cheap first test
        raise _refuse(what, location, f"is larger than {limits.max_bytes:,} bytes",
                      f"a YAML document of at most {limits.max_bytes:,} bytes")
    kind: Literal["parse", "load"] = "parse"
    try:
        _check_events(text, what, location, limits)
        kind = "load"
        return yaml.load(text, Loader=_BASE if strings_only else _SAFE)  # noqa: S506 - safe/base loaders only
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e)
        verb = "cannot be parsed" if kind == "parse" else "cannot be loaded"
        raise _refuse(what, location, f"{verb}{where}: {problem}", expected) from e
