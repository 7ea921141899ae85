"""Every notification event the code can emit is documented in docs/notifications.md, and nothing else is.

The code emits only :class:`ringfence.services.notify.Event` members (a ``Notification``'s event is typed so; the
scan below also refuses a bare event string handed to the notifier), rules accept exactly those names, and the
events table of docs/notifications.md lists each of them once: a new event without a line there fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import ringfence
from ringfence.adapters.notify.rules import EVENTS
from ringfence.services.notify import Event

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "notifications.md"
SRC = Path(ringfence.__file__).parent


def _documented() -> list[str]:
    """The event names in the first column of the events table (the table headed `| event | when |`)."""
    text = DOC.read_text(encoding="utf-8")
    table = text[text.index("| event | when |"):]
    table = table[:table.index("\n\n")]
    return re.findall(r"^\| `([a-z_.]+)` \|", table, re.M)


def _emitted() -> set[str]:
    """Every ``Event.X`` the package refers to outside the enum's own module, as its wire name."""
    names: set[str] = set()
    for path in SRC.rglob("*.py"):
        if path == SRC / "services" / "notify.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "Event":
                names.add(Event[node.attr].value)
    return names


def test_every_event_is_documented_once_and_nothing_else_is() -> None:
    documented = _documented()
    assert len(documented) == len(set(documented)), f"listed twice: {documented}"
    assert set(documented) == {e.value for e in Event}, (
        f"undocumented: {sorted({e.value for e in Event} - set(documented))}; "
        f"documented but not an event: {sorted(set(documented) - {e.value for e in Event})}")
    assert set(EVENTS) == set(documented)  # what a rule may name is what the page lists


def test_every_event_is_emitted_somewhere() -> None:
    """No documented event that no code path can send (a name people subscribe to and never hear)."""
    assert _emitted() == {e.value for e in Event}


def test_notifications_are_built_with_event_members_not_strings() -> None:
    """``Notification(event="…")`` with a bare string would bypass the enum (and this page)."""
    bad = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Notification":
                bad += [f"{path.relative_to(SRC)}:{node.lineno}" for kw in node.keywords
                        if kw.arg == "event" and isinstance(kw.value, ast.Constant)]
                bad += [f"{path.relative_to(SRC)}:{node.lineno}" for arg in node.args[:1] if isinstance(arg, ast.Constant)]
    assert bad == []
