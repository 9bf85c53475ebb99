"""A small, strict YAML subset: enough for kubeadm configs and kubeconfigs, stdlib only.

Supported: `---` / `...` document markers, comments, block mappings, block sequences (of
scalars, of mappings, nested, and the compact `key:\\n- item` form), plain / single-quoted /
double-quoted scalars, literal (`|`) and folded (`>`) block scalars, empty flow collections
(`[]`, `{}`) and single-line flow collections of scalars (`[a, "b"]`, `{a: 1}`).

Rejected loudly (YAMLError naming the line): anchors, aliases, tags, directives, complex keys,
multi-line plain or quoted scalars, nested flow collections, tabs in indentation, duplicate keys.

Plain scalars resolve like YAML 1.2's core schema: null/~/empty -> None, true/false -> bool,
integers -> int, floats -> float, anything else -> str. Quoted scalars are always str.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["YAMLError", "dump", "dump_all", "load", "load_all"]


class YAMLError(ValueError):
    """The text is not in the supported YAML subset (or is not YAML at all)."""


_INT_RE = re.compile(r"^[-+]?[0-9]+$")
_OCT_HEX_RE = re.compile(r"^0o[0-7]+$|^0x[0-9a-fA-F]+$")
_FLOAT_RE = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_NULLS = {"", "~", "null", "Null", "NULL"}
_TRUES = {"true", "True", "TRUE"}
_FALSES = {"false", "False", "FALSE"}
_SPECIAL_FLOATS = {
    ".inf": float("inf"),
    "+.inf": float("inf"),
    "-.inf": float("-inf"),
    ".Inf": float("inf"),
    "-.Inf": float("-inf"),
    ".nan": float("nan"),
    ".NaN": float("nan"),
}
_DQ_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "t": "\t",
    "\t": "\t",
    "n": "\n",
    "v": "\v",
    "f": "\f",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    '"': '"',
    "/": "/",
    "\\": "\\",
    "N": "\x85",
    "_": "\xa0",
}
_HEX_ESCAPES = {"x": 2, "u": 4, "U": 8}


def resolve_plain(text: str) -> Any:
    """Type a plain (unquoted) scalar as YAML 1.2's core schema does."""
    if text in _NULLS:
        return None
    if text in _TRUES:
        return True
    if text in _FALSES:
        return False
    if _INT_RE.match(text):
        return int(text)
    if _OCT_HEX_RE.match(text):
        return int(text, 0)
    if _FLOAT_RE.match(text) and any(c.isdigit() for c in text):
        return float(text)
    if text in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text]
    return text


class _Line:
    __slots__ = ("indent", "number", "raw", "text")

    def __init__(self, number: int, raw: str) -> None:
        self.number = number
        self.raw = raw
        stripped = raw.lstrip(" ")
        self.indent = len(raw) - len(stripped)
        self.text = stripped.rstrip()

    @property
    def blank(self) -> bool:
        return self.text == "" or self.text.startswith("#")


class _Parser:
    def __init__(self, lines: list[_Line], source: str) -> None:
        self.lines = lines
        self.pos = 0
        self.source = source

    # -- helpers ---------------------------------------------------------------------------
    def error(self, line: _Line | int | None, message: str) -> YAMLError:
        if isinstance(line, _Line):
            number: int | None = line.number
        else:
            number = line
        where = f"{self.source}: " if self.source else ""
        if number is not None:
            where += f"line {number}: "
        return YAMLError(f"{where}{message}")

    def peek(self) -> _Line | None:
        while self.pos < len(self.lines):
            line = self.lines[self.pos]
            if not line.blank:
                return line
            self.pos += 1
        return None

    # -- documents -------------------------------------------------------------------------
    def parse_document(self) -> Any:
        line = self.peek()
        if line is None:
            return None
        if line.indent != 0:
            raise self.error(line, "a document must start at column 0")
        value = self.parse_node(0)
        rest = self.peek()
        if rest is not None:
            raise self.error(rest, f"unexpected content {rest.text!r} (bad indentation?)")
        return value

    def parse_node(self, min_indent: int) -> Any:
        line = self.peek()
        if line is None or line.indent < min_indent:
            return None
        if _is_seq_item(line.text):
            return self.parse_sequence(line.indent)
        if line.text[0] in "[{":
            self.pos += 1
            value = self.parse_flow(line.text, line)
            return value
        if self.mapping_key(line) is not None:
            return self.parse_mapping(line.indent)
        raise self.error(line, f"expected a mapping or a sequence, got {line.text!r}")

    # -- mappings --------------------------------------------------------------------------
    def mapping_key(self, line: _Line) -> tuple[str, str] | None:
        """Split `key: rest` (comments not yet stripped from rest); None if not a mapping entry."""
        text = line.text
        if text.startswith(("? ", "?")) and (len(text) == 1 or text[1] == " "):
            raise self.error(line, "complex mapping keys ('? ') are not supported")
        if text[0] in "\"'":
            key, end = self.parse_quoted(text, 0, line)
            after = text[end:]
            if not after.startswith(":") or (len(after) > 1 and after[1] != " "):
                return None
            return key, after[1:]
        if text[0] in "&*!|>%@`":
            raise self.error(line, f"unsupported YAML construct at {text!r}")
        idx = 0
        while True:
            idx = text.find(":", idx)
            if idx < 0:
                return None
            if idx + 1 == len(text) or text[idx + 1] == " ":
                break
            idx += 1
        key = text[:idx].rstrip()
        if " #" in key:
            return None
        if not key:
            raise self.error(line, "empty mapping key")
        return key, text[idx + 1 :]

    def parse_mapping(self, indent: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        while True:
            line = self.peek()
            if line is None or line.indent < indent:
                return result
            if line.indent > indent:
                raise self.error(line, f"unexpected indentation for {line.text!r}")
            if _is_seq_item(line.text):
                raise self.error(line, "a sequence item where a mapping key was expected")
            split = self.mapping_key(line)
            if split is None:
                raise self.error(line, f"expected 'key: value', got {line.text!r}")
            key, rest = split
            if key in result:
                raise self.error(line, f"duplicate key {key!r}")
            self.pos += 1
            result[key] = self.parse_value(rest, line, indent)

    def parse_value(self, rest: str, line: _Line, indent: int) -> Any:
        """The value that follows `key:` on `line`, possibly as a nested block."""
        rest_stripped = rest.strip()
        if rest_stripped == "" or rest_stripped.startswith("#"):
            nxt = self.peek()
            if nxt is None:
                return None
            if nxt.indent > indent:
                return self.parse_node(indent + 1)
            if nxt.indent == indent and _is_seq_item(nxt.text):
                return self.parse_sequence(indent)
            return None
        if rest_stripped[0] in "|>":
            return self.parse_block_scalar(rest_stripped, line, indent)
        value = self.parse_inline(rest_stripped, line)
        nxt = self.peek()
        if nxt is not None and nxt.indent > indent:
            raise self.error(
                nxt, f"unexpected indented content {nxt.text!r} (multi-line scalars unsupported)"
            )
        return value

    # -- sequences -------------------------------------------------------------------------
    def parse_sequence(self, indent: int) -> list[Any]:
        result: list[Any] = []
        while True:
            line = self.peek()
            if line is None or line.indent < indent:
                return result
            if line.indent > indent:
                raise self.error(line, f"unexpected indentation for {line.text!r}")
            if not _is_seq_item(line.text):
                return result
            rest = line.text[1:]
            content = rest.lstrip(" ")
            if content == "" or content.startswith("#"):
                self.pos += 1
                nxt = self.peek()
                if nxt is not None and nxt.indent > indent:
                    result.append(self.parse_node(indent + 1))
                else:
                    result.append(None)
                continue
            # Re-read the rest of the line as if it started its own block at its column.
            column = indent + 1 + (len(rest) - len(content))
            virtual = _Line(line.number, " " * column + content)
            self.lines[self.pos] = virtual
            if _is_seq_item(content):
                result.append(self.parse_sequence(column))
            elif content[0] in "[{":
                self.pos += 1
                result.append(self.parse_flow(content, virtual))
                self.reject_deeper(indent, virtual)
            elif content[0] in "|>":
                self.pos += 1
                result.append(self.parse_block_scalar(content, virtual, indent))
            elif self.mapping_key(virtual) is not None:
                result.append(self.parse_mapping(column))
            else:
                self.pos += 1
                result.append(self.parse_inline(content, virtual))
                self.reject_deeper(indent, virtual)

    def reject_deeper(self, indent: int, line: _Line) -> None:
        nxt = self.peek()
        if nxt is not None and nxt.indent > indent:
            raise self.error(
                nxt, f"unexpected indented content {nxt.text!r} (multi-line scalars unsupported)"
            )

    # -- scalars ---------------------------------------------------------------------------
    def parse_inline(self, text: str, line: _Line) -> Any:
        """A scalar or a flow collection that ends on this line (comment allowed after it)."""
        if text[0] in "[{":
            return self.parse_flow(text, line)
        if text[0] in "\"'":
            value, end = self.parse_quoted(text, 0, line)
            tail = text[end:].strip()
            if tail and not tail.startswith("#"):
                raise self.error(line, f"unexpected text after quoted scalar: {tail!r}")
            return value
        return self.parse_plain(text, line)

    def parse_plain(self, text: str, line: _Line) -> Any:
        cut = text.find(" #")
        if cut >= 0:
            text = text[:cut]
        text = text.rstrip()
        if text[0] in "&*!%@`|>":
            raise self.error(line, f"unsupported YAML construct at {text!r}")
        if text[0] in "-?:" and len(text) > 1 and text[1] == " ":
            raise self.error(line, f"unexpected indicator in {text!r}")
        if ": " in text or text.endswith(":"):
            raise self.error(line, f"unexpected ':' in plain scalar {text!r} (quote it)")
        return resolve_plain(text)

    def parse_quoted(self, text: str, start: int, line: _Line) -> tuple[str, int]:
        """Parse a quoted scalar starting at text[start]; return (value, index after quote)."""
        quote = text[start]
        out: list[str] = []
        i = start + 1
        while i < len(text):
            ch = text[i]
            if quote == "'":
                if ch == "'":
                    if i + 1 < len(text) and text[i + 1] == "'":
                        out.append("'")
                        i += 2
                        continue
                    return "".join(out), i + 1
                out.append(ch)
                i += 1
                continue
            if ch == '"':
                return "".join(out), i + 1
            if ch == "\\":
                if i + 1 >= len(text):
                    break
                esc = text[i + 1]
                if esc in _DQ_ESCAPES:
                    out.append(_DQ_ESCAPES[esc])
                    i += 2
                    continue
                if esc in _HEX_ESCAPES:
                    width = _HEX_ESCAPES[esc]
                    digits = text[i + 2 : i + 2 + width]
                    if len(digits) != width or not re.fullmatch(r"[0-9a-fA-F]+", digits):
                        raise self.error(line, f"bad escape \\{esc}{digits}")
                    out.append(chr(int(digits, 16)))
                    i += 2 + width
                    continue
                raise self.error(line, f"unknown escape \\{esc}")
            out.append(ch)
            i += 1
        raise self.error(line, "unterminated quoted scalar (multi-line quoted scalars unsupported)")

    def parse_flow(self, text: str, line: _Line) -> Any:
        opener = text[0]
        closer = "]" if opener == "[" else "}"
        items: list[Any] = []
        pairs: dict[str, Any] = {}
        i = 1
        expect_item = True
        while True:
            while i < len(text) and text[i] == " ":
                i += 1
            if i >= len(text):
                raise self.error(line, "unterminated flow collection (must end on the same line)")
            ch = text[i]
            if ch == closer:
                i += 1
                break
            if ch in "[{":
                raise self.error(line, "nested flow collections are not supported")
            if ch == ",":
                if expect_item:
                    raise self.error(line, "empty entry in flow collection")
                expect_item = True
                i += 1
                continue
            if not expect_item:
                raise self.error(line, f"expected ',' or {closer!r} in flow collection")
            key_text, i = self.flow_token(text, i, line, closer)
            if opener == "{":
                key = key_text if isinstance(key_text, str) else str(key_text)
                while i < len(text) and text[i] == " ":
                    i += 1
                if i < len(text) and text[i] == ":":
                    value, i = self.flow_token(text, i + 1, line, closer)
                else:
                    value = None
                if key in pairs:
                    raise self.error(line, f"duplicate key {key!r}")
                pairs[key] = value
            else:
                items.append(key_text)
            expect_item = False
        tail = text[i:].strip()
        if tail and not tail.startswith("#"):
            raise self.error(line, f"unexpected text after flow collection: {tail!r}")
        return pairs if opener == "{" else items

    def flow_token(self, text: str, i: int, line: _Line, closer: str) -> tuple[Any, int]:
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] in "\"'":
            return self.parse_quoted(text, i, line)
        j = i
        while j < len(text) and text[j] not in ",]}":
            if text[j] == ":" and closer == "}" and (j + 1 == len(text) or text[j + 1] == " "):
                break
            if text[j] == "#" and j > 0 and text[j - 1] == " ":
                raise self.error(line, "comment inside a flow collection")
            j += 1
        token = text[i:j].strip()
        if token and token[0] in "&*!%@`|>[{":
            raise self.error(line, f"unsupported YAML construct at {token!r}")
        return resolve_plain(token), j

    def parse_block_scalar(self, header: str, line: _Line, parent_indent: int) -> str:
        cut = header.find(" #")
        if cut >= 0:
            header = header[:cut]
        header = header.strip()
        style, chomp = header[0], header[1:]
        if chomp not in ("", "-", "+"):
            raise self.error(line, f"unsupported block scalar header {header!r}")
        collected: list[str] = []
        content_indent: int | None = None
        while self.pos < len(self.lines):
            raw = self.lines[self.pos].raw
            if raw.strip() == "":
                collected.append("")
                self.pos += 1
                continue
            indent = len(raw) - len(raw.lstrip(" "))
            if content_indent is None:
                if indent <= parent_indent:
                    break
                content_indent = indent
            if indent < content_indent:
                break
            collected.append(raw[content_indent:].rstrip("\n"))
            self.pos += 1
        # trailing blank lines belong to chomping
        body = collected
        trailing = 0
        while body and body[-1] == "":
            body = body[:-1]
            trailing += 1
        text = "\n".join(body) if style == "|" else _fold(body)
        if not body:
            return ""
        if chomp == "-":
            return text
        if chomp == "+":
            return text + "\n" * (1 + trailing)
        return text + "\n"


def _fold(lines: list[str]) -> str:
    out = ""
    prev_normal = False
    for ln in lines:
        normal = ln != "" and not ln.startswith(" ")
        if ln == "":
            out += "\n"
            prev_normal = False
            continue
        if out and prev_normal and normal:
            out += " "
        elif out and not out.endswith("\n"):
            out += "\n"
        out += ln
        prev_normal = normal
    return out


def _is_seq_item(text: str) -> bool:
    return text == "-" or text.startswith("- ")


def _split_documents(text: str) -> list[list[_Line]]:
    docs: list[list[_Line]] = [[]]
    for number, raw in enumerate(text.splitlines(), start=1):
        if raw.startswith("%"):
            raise YAMLError(f"line {number}: YAML directives are not supported")
        if raw.startswith("---") and (len(raw) == 3 or raw[3] in " \t"):
            tail = raw[3:].strip()
            if tail and not tail.startswith("#"):
                raise YAMLError(f"line {number}: content after '---' is not supported")
            docs.append([])
            continue
        if raw.rstrip() == "...":
            docs.append([])
            continue
        if "\t" in raw[: len(raw) - len(raw.lstrip(" \t"))] and raw.strip():
            raise YAMLError(f"line {number}: tabs are not allowed in indentation")
        docs[-1].append(_Line(number, raw))
    return docs


def load_all(text: str, source: str = "") -> list[Any]:
    """Parse every non-empty document of `text`."""
    result = []
    for lines in _split_documents(text):
        if all(line.blank for line in lines):
            continue
        parser = _Parser(lines, source)
        result.append(parser.parse_document())
    return result


def load(text: str, source: str = "") -> Any:
    """Parse exactly one document (None for an empty text)."""
    docs = load_all(text, source)
    if len(docs) > 1:
        where = f"{source}: " if source else ""
        raise YAMLError(f"{where}expected a single YAML document, found {len(docs)}")
    return docs[0] if docs else None


# -- emitter ---------------------------------------------------------------------------------
_PLAIN_SAFE = re.compile(r"^[A-Za-z0-9_./$()=+~^][A-Za-z0-9_./:@$()=+~^ ,-]*$")


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if value in (float("inf"), float("-inf")):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    if not isinstance(value, str):
        raise YAMLError(f"cannot represent {type(value).__name__} in YAML")
    if (
        _PLAIN_SAFE.match(value)
        and value == value.strip()
        and ": " not in value
        and " #" not in value
        and not value.endswith(":")
        and resolve_plain(value) == value
        and isinstance(resolve_plain(value), str)
    ):
        return value
    return json.dumps(value, ensure_ascii=False)


def _emit(value: Any, indent: int, out: list[str]) -> None:
    pad = " " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise YAMLError(f"mapping keys must be strings, got {key!r}")
            k = _scalar(key)
            if isinstance(item, dict) and item:
                out.append(f"{pad}{k}:")
                _emit(item, indent + 2, out)
            elif isinstance(item, list) and item:
                out.append(f"{pad}{k}:")
                _emit(item, indent, out)
            else:
                out.append(f"{pad}{k}: {_inline(item)}")
    elif isinstance(value, list):
        for item in value:
            if (isinstance(item, (dict, list))) and item:
                sub: list[str] = []
                _emit(item, indent + 2, sub)
                sub[0] = pad + "- " + sub[0][indent + 2 :]
                out.extend(sub)
            else:
                out.append(f"{pad}- {_inline(item)}")
    else:
        out.append(pad + _scalar(value))


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def dump(value: Any) -> str:
    """Serialise dicts/lists/scalars as block YAML that `load` (and any YAML parser) reads back."""
    out: list[str] = []
    if isinstance(value, (dict, list)) and value:
        _emit(value, 0, out)
    else:
        out.append(_inline(value))
    return "\n".join(out) + "\n"


def dump_all(values: list[Any]) -> str:
    return "---\n".join(dump(v) for v in values)
