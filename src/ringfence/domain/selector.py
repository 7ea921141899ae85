"""A small expression language that selects hosts from the inventory.

Grammar (keywords are case-insensitive)::

    expr       := or_expr
    or_expr    := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | atom
    atom       := "(" expr ")" | FIELD OP VALUE | FIELD "in" "(" VALUE ("," VALUE)* ")"
    OP         := "=" | "!=" | "~" | "<" | "<=" | ">" | ">="

Examples: ``os_family=windows and agent.vendor=CrowdStrike``,
``cloud.region=eastus``, ``tier<=1 and not label=canary``,
``hostname~"web-*"``, ``country in (DE, FR)``.

Rules:

* String comparisons ignore case.  ``~`` is a glob: ``*`` matches any run of
  characters and ``?`` one character; nothing else is special (so the same
  pattern means the same in SQL ``LIKE``).
* Ordering operators apply to numeric fields (``tier``) only.
* Boolean fields accept ``true``/``false`` (also ``yes``/``no``, ``1``/``0``).
* ``labels.KEY=VALUE`` compares one label; ``label=KEY`` is true when the
  host carries that label at all; ``service=ID`` when the host serves it.
* ``agent.*`` fields (vendor, product, version, kernel_mode, boot_start) ask
  whether *some* installed agent matches.  Agent conditions joined directly
  by ``and`` must hold for the *same* agent, so
  ``agent.kernel_mode=true and agent.vendor=X`` means "a kernel-mode agent
  from X", not "some kernel-mode agent and some agent from X".

:func:`parse` returns an AST that :func:`compile_predicate` turns into a
Python predicate and :mod:`ringfence.adapters.db.selector_sql` into SQL;
both give the same answer (a property test checks it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ringfence.domain.model import Host, InstalledAgent
from ringfence.errors import InputError, shown

__all__ = [
    "AGENT_FIELDS",
    "HOST_FIELDS",
    "And",
    "Compare",
    "FieldKind",
    "Node",
    "Not",
    "Or",
    "compile_predicate",
    "glob_regex",
    "parse",
]


class FieldKind(StrEnum):
    """How a field's values are compared."""

    TEXT = "text"
    INT = "int"
    BOOL = "bool"


#: Host fields a selector may name, with their kind.  Dotted names map to
#: attributes (``cloud.region`` → ``cloud_region``).
HOST_FIELDS: dict[str, FieldKind] = {
    "id": FieldKind.TEXT,
    "hostname": FieldKind.TEXT,
    "tenant": FieldKind.TEXT,
    "os_family": FieldKind.TEXT,
    "os_name": FieldKind.TEXT,
    "os_version": FieldKind.TEXT,
    "os_build": FieldKind.TEXT,
    "arch": FieldKind.TEXT,
    "hardware_vendor": FieldKind.TEXT,
    "hardware_model": FieldKind.TEXT,
    "platform": FieldKind.TEXT,
    "cloud.provider": FieldKind.TEXT,
    "cloud.region": FieldKind.TEXT,
    "cloud.zone": FieldKind.TEXT,
    "site": FieldKind.TEXT,
    "country": FieldKind.TEXT,
    "subdivision": FieldKind.TEXT,
    "timezone": FieldKind.TEXT,
    "tier": FieldKind.INT,
    "encryption": FieldKind.TEXT,
    "recovery_key_escrowed": FieldKind.BOOL,
    "recovery_key_verified": FieldKind.BOOL,
    "oob_management": FieldKind.BOOL,
    "local_admin": FieldKind.BOOL,
    "usb_boot": FieldKind.BOOL,
    "label": FieldKind.TEXT,
    "service": FieldKind.TEXT,
}

#: Fields of installed agents (``agent.vendor`` and so on).
AGENT_FIELDS: dict[str, FieldKind] = {
    "agent.vendor": FieldKind.TEXT,
    "agent.product": FieldKind.TEXT,
    "agent.version": FieldKind.TEXT,
    "agent.kernel_mode": FieldKind.BOOL,
    "agent.boot_start": FieldKind.BOOL,
}

_OPS = ("!=", "<=", ">=", "=", "~", "<", ">", "in")
_ORDERING = {"<", "<=", ">", ">="}
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<lparen>\()|(?P<rparen>\))|(?P<comma>,)|
        (?P<op>!=|<=|>=|=|~|<|>)|
        (?P<quoted>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|
        (?P<word>[^\s()=!<>~,"']+)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True, slots=True)
class Compare:
    """``field op value``; ``values`` holds several values for ``in``."""

    field: str
    op: str
    values: tuple[str | int | bool, ...]

    @property
    def is_agent(self) -> bool:
        """True when the field is an ``agent.*`` field."""
        return self.field in AGENT_FIELDS


@dataclass(frozen=True, slots=True)
class And:
    """All children hold."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """Any child holds."""

    children: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The child does not hold."""

    child: Node


Node = Compare | And | Or | Not


def _error(expr: str, message: str, expected: str = "") -> InputError:
    return InputError.single("selector", f"{message} in {shown(expr)}", expected=expected)


def _tokenize(expr: str) -> list[tuple[str, str]]:
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        if expr[pos:].strip() == "":
            break
        m = _TOKEN.match(expr, pos)
        if m is None or m.end() == pos:
            raise _error(expr, f"unexpected character {shown(expr[pos:].lstrip()[:1])} at position {pos}")
        kind = m.lastgroup or ""
        text = m.group(kind)
        if kind == "quoted":
            text = re.sub(r"\\(.)", r"\1", text[1:-1])
        tokens.append((kind, text))
        pos = m.end()
    return tokens


def _coerce(expr: str, field: str, kind: FieldKind, raw: str, op: str) -> str | int | bool:
    if kind is FieldKind.INT:
        try:
            return int(raw)
        except ValueError:
            raise _error(expr, f"{field} compares numbers, got {shown(raw)}", expected="an integer such as 0 or 3") from None
    if kind is FieldKind.BOOL:
        if op in _ORDERING or op == "~":
            raise _error(expr, f"{field} is true or false; operator {shown(op)} does not apply", expected="= or !=")
        low = raw.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise _error(expr, f"{field} is true or false, got {shown(raw)}", expected="true or false")
    if op in _ORDERING:
        raise _error(expr, f"{field} is text; ordering operator {shown(op)} applies to numeric fields only",
                     expected="=, !=, ~ or in")
    return raw


MAX_LENGTH = 4000
MAX_DEPTH = 40


class _Parser:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.tokens = _tokenize(expr)
        self.pos = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise _error(self.expr, "expression ends too early", expected="a field, a value or ')'")
        self.pos += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok[0] == "word" and tok[1].lower() == word:
            self.pos += 1
            return True
        return False

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek() is not None:
            raise _error(self.expr, f"unexpected {shown(self.peek()[1])}",  # type: ignore[index]
                         expected="'and', 'or' or the end")
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.keyword("or"):
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self) -> Node:
        children = [self.not_expr()]
        while self.keyword("and"):
            children.append(self.not_expr())
        return children[0] if len(children) == 1 else And(tuple(children))

    def not_expr(self) -> Node:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _error(self.expr[:80], f"nests deeper than {MAX_DEPTH} levels",
                             expected="fewer nested parentheses and 'not's")
            if self.keyword("not"):
                return Not(self.not_expr())
            return self.atom()
        finally:
            self.depth -= 1

    def atom(self) -> Node:
        kind, text = self.take()
        if kind == "lparen":
            node = self.or_expr()
            closing = self.peek()
            if closing is None or closing[0] != "rparen":
                raise _error(self.expr, "missing ')'", expected="a ')' closing each '('")
            self.pos += 1
            return node
        if kind != "word":
            raise _error(self.expr, f"expected a field name, got {shown(text)}")
        field = text.lower()
        if field.startswith("labels."):
            fkind = FieldKind.TEXT
            field = "labels." + text[len("labels."):]
        elif field in HOST_FIELDS:
            fkind = HOST_FIELDS[field]
        elif field in AGENT_FIELDS:
            fkind = AGENT_FIELDS[field]
        else:
            known = ", ".join([*HOST_FIELDS, *AGENT_FIELDS, "labels.KEY"])
            raise _error(self.expr, f"unknown field {shown(text)}", expected=f"one of {known}")
        op_kind, op = self.take()
        if op_kind == "word" and op.lower() == "in":
            return self._in_list(field, fkind)
        if op_kind != "op":
            raise _error(self.expr, f"expected an operator after {shown(text)}, got {shown(op)}",
                         expected="=, !=, ~, <, <=, >, >= or in")
        vkind, raw = self.take()
        if vkind not in ("word", "quoted"):
            raise _error(self.expr, f"expected a value after {text}{op}, got {shown(raw)}")
        return Compare(field, op, (_coerce(self.expr, field, fkind, raw, op),))

    def _in_list(self, field: str, fkind: FieldKind) -> Node:
        if self.take()[0] != "lparen":
            raise _error(self.expr, f"'in' after {field} needs a list", expected="in (a, b, c)")
        values: list[str | int | bool] = []
        while True:
            vkind, raw = self.take()
            if vkind not in ("word", "quoted"):
                raise _error(self.expr, f"expected a value in the list for {field}, got {shown(raw)}")
            values.append(_coerce(self.expr, field, fkind, raw, "="))
            sep = self.take()[0]
            if sep == "rparen":
                break
            if sep != "comma":
                raise _error(self.expr, "values in a list are separated by commas", expected="in (a, b, c)")
        return Compare(field, "in", tuple(values))


def parse(expr: str) -> Node:
    """Parse a selector; raise :class:`InputError` naming what is wrong."""
    if not expr or not expr.strip():
        raise InputError.single("selector", "is empty", expected="an expression such as os_family=windows")
    if len(expr) > MAX_LENGTH:
        raise InputError.single("selector", f"is {len(expr)} characters long", expected=f"at most {MAX_LENGTH}")
    return _Parser(expr).parse()


# --- evaluation -----------------------------------------------------------

def glob_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression for a ``~`` glob: ``*`` and ``?`` are the only wildcards."""
    parts = [".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern]
    return re.compile("".join(parts), re.DOTALL)


def _match_value(op: str, actual: Any, values: tuple[str | int | bool, ...]) -> bool:
    if isinstance(actual, str):
        actual_l = actual.lower()
        if op == "=":
            return actual_l == str(values[0]).lower()
        if op == "!=":
            return actual_l != str(values[0]).lower()
        if op == "~":
            return glob_regex(str(values[0]).lower()).fullmatch(actual_l) is not None
        if op == "in":
            return actual_l in {str(v).lower() for v in values}
        raise AssertionError(op)
    value = values[0]
    if op == "=":
        return bool(actual == value)
    if op == "!=":
        return bool(actual != value)
    if op == "in":
        return actual in values
    if op == "<":
        return bool(actual < value)
    if op == "<=":
        return bool(actual <= value)
    if op == ">":
        return bool(actual > value)
    if op == ">=":
        return bool(actual >= value)
    raise AssertionError(op)


def _host_value(host: Host, field: str) -> Any:
    attr = field.replace(".", "_")
    value = getattr(host, attr)
    return value.value if hasattr(value, "value") and not isinstance(value, bool | int) else value


def _agent_pred(cmp: Compare) -> Callable[[InstalledAgent], bool]:
    attr = cmp.field.removeprefix("agent.")
    return lambda a: _match_value(cmp.op, getattr(a, attr), cmp.values)


def _compile(node: Node) -> Callable[[Host], bool]:
    if isinstance(node, Compare):
        if node.is_agent:
            pred = _agent_pred(node)
            return lambda h: any(pred(a) for a in h.agents)
        if node.field.startswith("labels."):
            key = node.field[len("labels."):]
            return lambda h: key in h.labels and _match_value(node.op, h.labels[key], node.values)
        if node.field == "label":
            return lambda h: _any_text(node, list(h.labels))
        if node.field == "service":
            return lambda h: _any_text(node, list(h.services))
        return lambda h: _match_value(node.op, _host_value(h, node.field), node.values)
    if isinstance(node, Not):
        inner = _compile(node.child)
        return lambda h: not inner(h)
    if isinstance(node, Or):
        parts = [_compile(c) for c in node.children]
        return lambda h: any(p(h) for p in parts)
    agent_cmps = [c for c in node.children if isinstance(c, Compare) and c.is_agent]
    others = [_compile(c) for c in node.children if not (isinstance(c, Compare) and c.is_agent)]
    if agent_cmps:
        preds = [_agent_pred(c) for c in agent_cmps]
        others.append(lambda h: any(all(p(a) for p in preds) for a in h.agents))
    return lambda h: all(p(h) for p in others)


def _any_text(node: Compare, members: list[str]) -> bool:
    """``label``/``service`` set membership: ``!=`` means "has none equal"."""
    if node.op == "!=":
        return not any(_match_value("=", m, node.values) for m in members)
    return any(_match_value(node.op, m, node.values) for m in members)


def compile_predicate(expr: str | Node) -> Callable[[Host], bool]:
    """A predicate over :class:`Host` for a selector string or parsed AST."""
    node = parse(expr) if isinstance(expr, str) else expr
    return _compile(node)
