"""Turns ``ffi/include/ssekit.h`` into a declaration list that ``cffi.FFI.cdef`` accepts.

cffi's cdef parser takes no preprocessor lines and no ``//`` comments, and the header has both (the
include guard, three ``#include`` lines, and the ``#if``/``#ifdef`` blocks cbindgen writes around each
enum's underlying type and the ``extern "C"`` block). Rather than require a C compiler at build time,
this module is a small preprocessor that evaluates those conditionals as a C11 compiler does
(``__STDC_VERSION__`` = ``201112L``, ``__cplusplus`` undefined; an unknown identifier is 0) and
drops every comment. It refuses any directive it does not know (``#define`` of a value, ``#pragma``,
``#include`` outside the standard headers below, ...), so a header change that it cannot handle
stops the build instead of producing a wrong cdef. ``tests/test_cdef.py`` checks its output token by
token against ``cc -E -P -std=c11``.

Pure Python, no imports from the package: ``setup.py`` loads this file by path at build time.
"""

from __future__ import annotations

import re
from typing import Dict, List

__all__ = ["header_to_cdef", "strip_comments", "CdefError"]

# What a C11 compiler predefines that the header looks at.
C11_MACROS: Dict[str, int] = {"__STDC__": 1, "__STDC_VERSION__": 201112}
# The headers the ssekit header includes; cffi knows their types (bool, size_t, uint8_t...).
KNOWN_INCLUDES = {"<stdbool.h>", "<stddef.h>", "<stdint.h>"}


class CdefError(ValueError):
    """The header uses something this preprocessor does not handle."""


def strip_comments(text: str) -> str:
    """Removes ``/* */`` and ``//`` comments (outside string and character literals), keeping line
    breaks so that line numbers in error messages still match the header."""
    out: List[str] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "\"'":
            j = i + 1
            while j < n and text[j] != c:
                j += 2 if text[j] == "\\" else 1
            out.append(text[i : j + 1])
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise CdefError("unterminated /* comment")
            out.append("\n" * text.count("\n", i, j))
            out.append(" ")
            i = j + 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


_TOKEN = re.compile(
    r"\s*(?:(?P<num>0[xX][0-9a-fA-F]+|\d+)[uUlL]*|(?P<id>[A-Za-z_]\w*)|(?P<op>\|\||&&|==|!=|>=|<=|[()!<>]))"
)


class _Cond:
    """Evaluates one ``#if`` expression: integers, identifiers, ``defined X``/``defined(X)``, ``!``,
    comparisons, ``&&``, ``||`` and parentheses (all the header uses)."""

    def __init__(self, expr: str, defined: Dict[str, int], line: int) -> None:
        self.toks: List[tuple] = []
        pos = 0
        expr = expr.strip()
        while pos < len(expr):
            m = _TOKEN.match(expr, pos)
            if not m or m.end() == pos:
                raise CdefError(f"line {line}: cannot evaluate #if {expr!r}")
            kind = m.lastgroup
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.defined = defined
        self.line = line
        self.expr = expr

    def _peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def _take(self, value=None):
        tok = self._peek()
        if tok[0] is None or (value is not None and tok[1] != value):
            raise CdefError(f"line {self.line}: cannot evaluate #if {self.expr!r}")
        self.i += 1
        return tok

    def evaluate(self) -> int:
        v = self._or()
        if self.i != len(self.toks):
            raise CdefError(f"line {self.line}: trailing tokens in #if {self.expr!r}")
        return v

    def _or(self) -> int:
        v = self._and()
        while self._peek()[1] == "||":
            self._take()
            rhs = self._and()
            v = int(bool(v) or bool(rhs))
        return v

    def _and(self) -> int:
        v = self._cmp()
        while self._peek()[1] == "&&":
            self._take()
            rhs = self._cmp()
            v = int(bool(v) and bool(rhs))
        return v

    def _cmp(self) -> int:
        v = self._unary()
        ops = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            ">=": lambda a, b: a >= b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            "<": lambda a, b: a < b,
        }
        while self._peek()[1] in ops:
            op = self._take()[1]
            v = int(ops[op](v, self._unary()))
        return v

    def _unary(self) -> int:
        kind, value = self._peek()
        if value == "!":
            self._take()
            return int(not self._unary())
        if value == "(":
            self._take()
            v = self._or()
            self._take(")")
            return v
        if kind == "num":
            self._take()
            return int(value, 0) if not value.startswith("0") or value == "0" or value[1:2] in "xX" else int(value, 8)
        if kind == "id":
            self._take()
            if value == "defined":
                if self._peek()[1] == "(":
                    self._take()
                    name = self._take()[1]
                    self._take(")")
                else:
                    name = self._take()[1]
                return int(name in self.defined)
            # An identifier that is no macro is 0 in #if, as in C.
            return self.defined.get(value, 0)
        raise CdefError(f"line {self.line}: cannot evaluate #if {self.expr!r}")


def header_to_cdef(text: str) -> str:
    """The declarations of ``ssekit.h`` as a C11 compiler sees them, without comments or
    preprocessor lines: the string to hand to ``cffi.FFI.cdef``."""
    defined: Dict[str, int] = dict(C11_MACROS)
    lines = strip_comments(text).split("\n")
    # Each entry: [this branch active, some branch already taken, enclosing active].
    stack: List[List[bool]] = []
    active = True
    out: List[str] = []
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line.startswith("#"):
            if active and line:
                out.append(raw.rstrip())
            continue
        m = re.match(r"#\s*(\w+)\s*(.*)$", line)
        if not m:
            raise CdefError(f"line {number}: cannot parse directive {line!r}")
        directive, rest = m.group(1), m.group(2).strip()
        if directive in ("if", "ifdef", "ifndef"):
            if directive == "if":
                cond = bool(_Cond(rest, defined, number).evaluate()) if active else False
            else:
                if not re.fullmatch(r"[A-Za-z_]\w*", rest):
                    raise CdefError(f"line {number}: #{directive} needs one name, got {rest!r}")
                cond = (rest in defined) == (directive == "ifdef")
            stack.append([active and cond, active and cond, active])
        elif directive in ("elif", "else"):
            if not stack:
                raise CdefError(f"line {number}: #{directive} without #if")
            top = stack[-1]
            if top[1] or not top[2]:
                top[0] = False
            elif directive == "else":
                top[0] = top[1] = True
            else:
                cond = bool(_Cond(rest, defined, number).evaluate())
                top[0] = top[1] = cond
        elif directive == "endif":
            if not stack:
                raise CdefError(f"line {number}: #endif without #if")
            stack.pop()
        elif not active:
            pass  # any directive inside a skipped block is skipped, as cpp does
        elif directive == "include":
            if rest not in KNOWN_INCLUDES:
                raise CdefError(f"line {number}: unexpected #include {rest} (known: {sorted(KNOWN_INCLUDES)})")
        elif directive == "define":
            # Only object-like macros without a value (the include guard): anything else would
            # have to be expanded in the declarations, which this pass does not do.
            if not re.fullmatch(r"[A-Za-z_]\w*", rest):
                raise CdefError(f"line {number}: only '#define NAME' is handled, got {line!r}")
            defined[rest] = 1
        else:
            raise CdefError(f"line {number}: unsupported directive {line!r}")
        active = stack[-1][0] if stack else True
    if stack:
        raise CdefError("unterminated #if block at end of header")
    return "\n".join(out) + "\n"


if __name__ == "__main__":  # python -m ssekit._cdef ffi/include/ssekit.h
    import sys

    with open(sys.argv[1], encoding="utf-8") as f:
        sys.stdout.write(header_to_cdef(f.read()))
