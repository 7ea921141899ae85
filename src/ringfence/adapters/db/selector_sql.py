"""Translate a parsed selector (:mod:`ringfence.domain.selector`) into a SQL condition on ``hosts``.

The translation mirrors the Python predicate rule for rule (case-insensitive
text, ``*``/``?`` globs as ``LIKE``, agent conditions joined by ``and`` on the
same agent); ``tests/test_selector.py`` checks that both select the same hosts.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true

from ringfence.adapters.db.tables import HostAgentRow, HostLabelRow, HostRow, HostServiceRow
from ringfence.domain.selector import Compare, Node, Not, Or

__all__ = ["to_sql"]


def _like(pattern: str) -> str:
    out = []
    for ch in pattern.lower():
        if ch in "\\%_":
            out.append("\\" + ch)
        elif ch == "*":
            out.append("%")
        elif ch == "?":
            out.append("_")
        else:
            out.append(ch)
    return "".join(out)


def _cmp(col: Any, op: str, values: tuple[str | int | bool, ...], *, text: bool) -> ColumnElement[bool]:
    if text:
        lowered = func.lower(col)
        if op == "=":
            return lowered == str(values[0]).lower()
        if op == "!=":
            return lowered != str(values[0]).lower()
        if op == "~":
            return lowered.like(_like(str(values[0])), escape="\\")
        if op == "in":
            return lowered.in_([str(v).lower() for v in values])
        raise AssertionError(op)
    if op == "in":
        return col.in_(list(values))  # type: ignore[no-any-return]
    value = values[0]
    ops = {"=": col == value, "!=": col != value}
    if op in ops:
        return ops[op]  # type: ignore[no-any-return]
    return {"<": col < value, "<=": col <= value, ">": col > value, ">=": col >= value}[op]  # type: ignore[no-any-return]


def _agent_cond(c: Compare) -> ColumnElement[bool]:
    attr = c.field.removeprefix("agent.")
    col = getattr(HostAgentRow, attr)
    return _cmp(col, c.op, c.values, text=attr in ("vendor", "product", "version"))


def _agents_exist(cmps: list[Compare]) -> ColumnElement[bool]:
    conds = [_agent_cond(c) for c in cmps]
    return exists(select(HostAgentRow.host_id).where(HostAgentRow.host_id == HostRow.id, *conds))


def _member(table: Any, col: Any, c: Compare) -> ColumnElement[bool]:
    if c.op == "!=":
        return not_(exists(select(table.host_id).where(table.host_id == HostRow.id,
                                                       _cmp(col, "=", c.values, text=True))))
    return exists(select(table.host_id).where(table.host_id == HostRow.id, _cmp(col, c.op, c.values, text=True)))


def _compare(c: Compare) -> ColumnElement[bool]:
    if c.is_agent:
        return _agents_exist([c])
    if c.field.startswith("labels."):
        key = c.field[len("labels."):]
        return exists(select(HostLabelRow.host_id).where(
            HostLabelRow.host_id == HostRow.id, HostLabelRow.key == key,
            _cmp(HostLabelRow.value, c.op, c.values, text=True)))
    if c.field == "label":
        return _member(HostLabelRow, HostLabelRow.key, c)
    if c.field == "service":
        return _member(HostServiceRow, HostServiceRow.service_id, c)
    col = getattr(HostRow, c.field.replace(".", "_"))
    return _cmp(col, c.op, c.values, text=not isinstance(c.values[0], bool | int))


def to_sql(node: Node | None) -> ColumnElement[bool]:
    """The WHERE condition over ``hosts`` for a selector AST (``None`` selects all)."""
    if node is None:
        return true()
    if isinstance(node, Compare):
        return _compare(node)
    if isinstance(node, Not):
        return not_(to_sql(node.child))
    if isinstance(node, Or):
        return or_(false(), *[to_sql(ch) for ch in node.children])
    agent_cmps = [ch for ch in node.children if isinstance(ch, Compare) and ch.is_agent]
    rest = [to_sql(ch) for ch in node.children if not (isinstance(ch, Compare) and ch.is_agent)]
    if agent_cmps:
        rest.append(_agents_exist(agent_cmps))
    return and_(true(), *rest)
