"""OData v4 query options as Dataverse accepts them: parsed into plain values, no pandas here.

`$filter` becomes a small expression tree (`evaluate.py` turns it into a vectorised mask);
`$select`, `$orderby`, `$expand` and the `Prefer` header become lists and dataclasses.
Parsing is strict in the places the real service is strict: unquoted GUIDs and datetimes,
`''` as the only escape in strings, qualified enum literals, no `$skip`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal as TypingLiteral

from migration_pipeline.sandbox.dataverse.errors import query_error

LiteralKind = TypingLiteral["null", "string", "int", "decimal", "bool", "guid", "datetime", "date", "enum"]
ComparisonOp = TypingLiteral["eq", "ne", "gt", "ge", "lt", "le"]
FUNCTIONS = frozenset({"contains", "startswith", "endswith"})
COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})


@dataclass(frozen=True)
class Literal:
    kind: LiteralKind
    value: object
    enum_type: str | None = None  # "Microsoft.Dynamics.CRM.AttributeTypeCode" for enum literals


@dataclass(frozen=True)
class Property:
    path: str  # "name", "_parentaccountid_value", or a metadata path such as "RequiredLevel/Value"


@dataclass(frozen=True)
class Comparison:
    op: ComparisonOp
    left: Operand
    right: Operand


@dataclass(frozen=True)
class Call:
    name: str  # contains, startswith, endswith
    property: Property
    argument: Literal


@dataclass(frozen=True)
class BoolOp:
    op: TypingLiteral["and", "or"]
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Not:
    operand: Expr


Operand = Literal | Property
Expr = Comparison | Call | BoolOp | Not


@dataclass(frozen=True)
class OrderKey:
    property: str
    descending: bool = False


@dataclass(frozen=True)
class ExpandItem:
    name: str
    options: dict[str, str] = field(default_factory=dict)


# --- tokens ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<enum>[A-Za-z_][\w.]*\.[A-Za-z_]\w*'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,7})?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<guid>[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![\w-]))
  | (?P<date>\d{4}-\d{2}-\d{2}(?![\w:]))
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?[mMdDfFlL]?(?![\w.]))
  | (?P<name>[A-Za-z_]\w*(?:/[A-Za-z_]\w*)*)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<comma>,)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str
    position: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise query_error(f"Syntax error at position {position} in '{text}'.")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), position))
        position = match.end()
    return tokens


# --- $filter ----------------------------------------------------------------------------------


class _FilterParser:
    """Recursive descent over: or > and > not > comparison/function > parentheses."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0

    def parse(self) -> Expr:
        if not self.tokens:
            raise query_error("The $filter query option must not be empty.")
        expr = self._or()
        if self.index != len(self.tokens):
            token = self.tokens[self.index]
            raise query_error(f"Syntax error at position {token.position} in '{self.text}'.")
        return expr

    def _peek(self) -> _Token | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def _next(self) -> _Token:
        token = self._peek()
        if token is None:
            raise query_error(f"Unexpected end of expression in '{self.text}'.")
        self.index += 1
        return token

    def _keyword(self, word: str) -> bool:
        token = self._peek()
        if token is not None and token.kind == "name" and token.text == word:
            self.index += 1
            return True
        return False

    def _expect(self, kind: str) -> _Token:
        token = self._next()
        if token.kind != kind:
            raise query_error(f"Syntax error at position {token.position} in '{self.text}'.")
        return token

    def _or(self) -> Expr:
        expr = self._and()
        while self._keyword("or"):
            expr = BoolOp("or", expr, self._and())
        return expr

    def _and(self) -> Expr:
        expr = self._unary()
        while self._keyword("and"):
            expr = BoolOp("and", expr, self._unary())
        return expr

    def _unary(self) -> Expr:
        if self._keyword("not"):
            return Not(self._unary())
        return self._predicate()

    def _predicate(self) -> Expr:
        token = self._peek()
        if token is not None and token.kind == "open":
            self.index += 1
            expr = self._or()
            self._expect("close")
            return expr
        if token is not None and token.kind == "name" and token.text in FUNCTIONS:
            return self._call()
        left = self._operand()
        op_token = self._next()
        if op_token.kind != "name" or op_token.text not in COMPARISONS:
            raise query_error(f"Syntax error at position {op_token.position} in '{self.text}'.")
        right = self._operand()
        if isinstance(left, Literal) and isinstance(right, Literal):
            raise query_error(f"A comparison needs a property on one side in '{self.text}'.")
        return Comparison(op_token.text, left, right)  # type: ignore[arg-type]

    def _call(self) -> Call:
        name = self._next().text
        self._expect("open")
        operand = self._operand()
        self._expect("comma")
        argument = self._operand()
        self._expect("close")
        if not isinstance(operand, Property) or not isinstance(argument, Literal) or argument.kind != "string":
            raise query_error(f"The function '{name}' takes a property and a string literal.")
        return Call(name, operand, argument)

    def _operand(self) -> Operand:
        token = self._next()
        if token.kind == "name":
            if token.text == "null":
                return Literal("null", None)
            if token.text in {"true", "false"}:
                return Literal("bool", token.text == "true")
            if token.text in COMPARISONS or token.text in {"and", "or", "not"}:
                raise query_error(f"Syntax error at position {token.position} in '{self.text}'.")
            return Property(token.text)
        return _literal(token)


def _literal(token: _Token) -> Literal:
    text = token.text
    if token.kind == "string":
        return Literal("string", text[1:-1].replace("''", "'"))
    if token.kind == "enum":
        type_name, _, rest = text.partition("'")
        return Literal("enum", rest[:-1].replace("''", "'"), enum_type=type_name)
    if token.kind == "guid":
        return Literal("guid", text.lower())
    if token.kind == "datetime":
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return Literal("datetime", moment.astimezone(UTC))
    if token.kind == "date":
        try:
            return Literal("date", date.fromisoformat(text))
        except ValueError as error:
            raise query_error(f"'{text}' is not a valid date.") from error
    if token.kind == "number":
        body = text.rstrip("mMdDfFlL")
        if re.fullmatch(r"-?\d+", body) and text[-1:] not in {"m", "M", "d", "D", "f", "F"}:
            return Literal("int", int(body))
        return Literal("decimal", float(body))
    raise query_error(f"Syntax error at position {token.position}: unexpected '{text}'.")


def parse_filter(text: str) -> Expr:
    return _FilterParser(text).parse()


def filter_properties(expr: Expr) -> set[str]:
    """Every property path the expression reads, so callers can reject unknown ones up front."""
    if isinstance(expr, Comparison):
        return {side.path for side in (expr.left, expr.right) if isinstance(side, Property)}
    if isinstance(expr, Call):
        return {expr.property.path}
    if isinstance(expr, BoolOp):
        return filter_properties(expr.left) | filter_properties(expr.right)
    return filter_properties(expr.operand)


# --- $select, $orderby, $expand, $top, $count -------------------------------------------------

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def parse_select(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",")]
    for name in names:
        if not _IDENTIFIER.fullmatch(name):
            raise query_error(f"The $select query option contains an invalid item '{name}'.")
    return list(dict.fromkeys(names))


def parse_orderby(text: str) -> list[OrderKey]:
    keys: list[OrderKey] = []
    for part in text.split(","):
        words = part.split()
        if len(words) not in {1, 2} or not _IDENTIFIER.fullmatch(words[0]) or words[1:] not in ([], ["asc"], ["desc"]):
            raise query_error(f"The $orderby query option contains an invalid item '{part.strip()}'.")
        keys.append(OrderKey(words[0], descending=words[1:] == ["desc"]))
    return keys


def parse_expand(text: str) -> list[ExpandItem]:
    """`A,B($select=x,y;$filter=...)` -> items with their nested options."""
    items: list[ExpandItem] = []
    for part in _split_top_level(text, ","):
        match = re.fullmatch(r"\s*([A-Za-z_]\w*)\s*(?:\((.*)\))?\s*", part, re.DOTALL)
        if match is None:
            raise query_error(f"The $expand query option contains an invalid item '{part.strip()}'.")
        options: dict[str, str] = {}
        for option in _split_top_level(match.group(2) or "", ";"):
            if not option.strip():
                continue
            name, sep, value = option.partition("=")
            if not sep or not name.strip().startswith("$"):
                raise query_error(f"The $expand query option contains an invalid nested option '{option.strip()}'.")
            options[name.strip()] = value.strip()
        items.append(ExpandItem(match.group(1), options))
    return items


def _split_top_level(text: str, separator: str) -> list[str]:
    """Split on `separator` outside parentheses and quotes."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for char in text:
        if char == "'":
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
        elif not quoted and char == ")":
            depth -= 1
        if char == separator and depth == 0 and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts if text else []


def parse_top(text: str) -> int:
    if not re.fullmatch(r"\d+", text.strip()):
        raise query_error(f"Invalid value '{text}' for $top query option found. The $top query option requires a non-negative integer value.")
    return int(text)


def parse_count(text: str) -> bool:
    if text not in {"true", "false"}:
        raise query_error(f"'{text}' is not a valid count option.")
    return text == "true"


# --- Prefer -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preferences:
    max_page_size: int | None = None
    annotations: tuple[str, ...] = ()  # the patterns of odata.include-annotations, as sent
    track_changes: bool = False

    def wants(self, annotation: str) -> bool:
        """Does `odata.include-annotations` cover this term (exact, `*`, or `Namespace.*`)?"""
        for pattern in self.annotations:
            if pattern == "*" or pattern == annotation:
                return True
            if pattern.endswith(".*") and annotation.startswith(pattern[:-1]):
                return True
        return False


def parse_prefer(values: list[str]) -> Preferences:
    """Parse every `Prefer` header (comma-separated preferences, optionally quoted values)."""
    max_page_size: int | None = None
    annotations: tuple[str, ...] = ()
    track_changes = False
    for value in values:
        for preference in _split_top_level_quoted(value):
            name, _, argument = preference.strip().partition("=")
            name = name.strip().lower()
            argument = argument.strip().strip('"')
            if name == "odata.maxpagesize":
                if not argument.isdigit() or int(argument) == 0:
                    raise query_error(f"The odata.maxpagesize preference value '{argument}' is not a positive integer.")
                max_page_size = int(argument)
            elif name == "odata.include-annotations":
                annotations = tuple(item.strip() for item in argument.split(",") if item.strip())
            elif name == "odata.track-changes":
                track_changes = True
    return Preferences(max_page_size, annotations, track_changes)


def _split_top_level_quoted(value: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in value:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


# --- resource paths ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Segment:
    """One path segment: `accounts`, `accounts(<guid>)`, `EntityDefinitions(LogicalName='account')`."""

    name: str
    key: str | None = None  # the raw text between the parentheses


_SEGMENT = re.compile(r"([^()/]+)(?:\(([^()]*)\))?")
_GUID = re.compile(r"\{?([0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12})\}?")


def parse_path(path: str) -> list[Segment]:
    segments: list[Segment] = []
    for part in path.strip("/").split("/"):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise query_error(f"Bad Request - Error in query syntax: the segment '{part}' is not valid.")
        segments.append(Segment(match.group(1), match.group(2)))
    return segments


def guid_key(key: str) -> str | None:
    """The lower-case GUID of a `(<guid>)` key, or None when the key is something else."""
    match = _GUID.fullmatch(key.strip())
    return match.group(1).lower() if match else None


def named_key(key: str, property_name: str) -> str | None:
    """The value of a `(Name='value')` alternate key, or None when the key has another form."""
    match = re.fullmatch(rf"\s*{re.escape(property_name)}\s*=\s*'((?:[^']|'')*)'\s*", key)
    return match.group(1).replace("''", "'") if match else None
