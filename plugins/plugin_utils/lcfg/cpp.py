# Copyright (c) lcfg.xen contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
"""The subset of the C preprocessor that LCFG source profiles use.

Supported: ``#include <file>`` / ``#include "file"`` (the including file's directory
first for the quoted form, then the include path), object-like ``#define`` /
``#undef`` (``-D`` style initial defines), ``#if`` / ``#ifdef`` / ``#ifndef`` /
``#elif`` / ``#else`` / ``#endif`` with ``defined``, integers, ``! && || == != < > <= >=``
and parentheses, ``#error`` / ``#warning``, ``/* */`` comments (string aware, may span
lines), backslash continuation, and whitespace collapsing like ``cpp``.
Not supported (an error says so): function-like macros, ``##`` / ``#`` operators.

Each file is split into logical lines once per process (keyed by path, mtime and
size) because a site includes the same headers in every profile.

Profiles are untrusted: ``#include`` opens only files whose real path (symlinks
resolved) lies inside the include path or the allowed directories (the sources'
directories; the profile's own directory always), and every profile has budgets
(bytes read, number of includes, characters produced by macro expansion); going
over one is an error naming file and line. Errors quote at most a short excerpt
of the offending text.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

from .errors import LcfgError, excerpt

__all__ = [
    "LogicalLine",
    "tokenize",
    "read_lines",
    "expand",
    "Preprocessor",
    "clear_cache",
    "inside",
    "MAX_INCLUDE_DEPTH",
    "MAX_FILE_SIZE",
    "MAX_PROFILE_INPUT",
    "MAX_INCLUDES",
    "MAX_PROFILE_LINES",
    "MAX_EXPANSION",
    "MAX_PROFILE_EXPANSION",
    "MAX_IF_INTEGER",
]

MAX_INCLUDE_DEPTH = 200
MAX_FILE_SIZE = 4 * 1024 * 1024  # one source profile or header
MAX_PROFILE_INPUT = 16 * 1024 * 1024  # every file read for one profile, each inclusion counted
MAX_PROFILE_LINES = 250_000  # logical lines walked for one profile (memory, time)
MAX_INCLUDES = 10000  # #include lines followed for one profile
MAX_EXPANSION = 256 * 1024  # characters produced by one expansion, plus 16 per replacement
MAX_PROFILE_EXPANSION = 8 * 1024 * 1024  # characters produced by every expansion of one profile
MAX_EXPANSION_DEPTH = 200
MAX_IF_INTEGER = 2**63 - 1  # cpp's intmax_t: #if arithmetic beyond it is an error
_CACHE_LIMIT = 4096
_CACHE_LINES_LIMIT = 1_000_000  # logical lines kept in the cache, every file together


class LogicalLine:
    """One logical line: a directive (``directive`` set) or statement text.

    ``parsed`` is a slot for the statement reader's cached parse of ``text``.
    """

    __slots__ = ("line", "directive", "text", "parsed", "loc")

    def __init__(self, line: int, directive: str | None, text: str) -> None:
        self.line = line
        self.directive = directive
        self.text = text
        self.parsed: Any = None
        self.loc: str | None = None  # "file:line", filled by the statement reader

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        if self.directive is not None:
            return f"LogicalLine({self.line}, #{self.directive} {self.text!r})"
        return f"LogicalLine({self.line}, {self.text!r})"


_SPECIAL = re.compile(r'/\*|"')
_COMMENT = re.compile(r"/\*")
_STRING_REST = re.compile(r'(?:[^"\\\n]|\\.)*"')
_WS = re.compile(r"\s+")
_STRING_OR_WS = re.compile(r'"(?:[^"\\\n]|\\.)*"|\s+')
_DIRECTIVE = re.compile(r"#\s*([A-Za-z_]\w*|\d+)?\s*(.*)\Z", re.S)


def _collapse(text: str) -> str:
    """Collapse whitespace runs outside string literals to one space; strip."""
    if '"' not in text:
        return " ".join(text.split())
    return _STRING_OR_WS.sub(lambda m: " " if m.group(0)[0] != '"' else m.group(0), text).strip()


def _continue(line: str, lines: list[str], i: int) -> tuple[str, int]:
    """Join ``line`` (ending in a backslash) with the following physical lines."""
    pieces = [line[:-1]]
    n = len(lines)
    while i < n:
        nxt = lines[i]
        i += 1
        if nxt.endswith("\r"):
            nxt = nxt[:-1]
        if nxt.endswith("\\"):
            pieces.append(nxt[:-1])
        else:
            pieces.append(nxt)
            break
    return "".join(pieces), i


def tokenize(text: str, file: str) -> list[LogicalLine]:
    """Split ``text`` into logical lines: comments removed, continuations joined.

    A logical line carries the number of its first physical line.
    Raises LcfgError for an unterminated comment.
    """
    lines = text.split("\n")
    n = len(lines)
    out: list[LogicalLine] = []
    i = 0
    while i < n:
        start = i + 1
        line = lines[i]
        i += 1
        if line.endswith("\r"):
            line = line[:-1]
        if line.endswith("\\") and i < n:
            line, i = _continue(line, lines, i)
        if "/*" in line or '"' in line:
            parts: list[str] = []
            pos = 0
            quotes = True
            while True:
                m = (_SPECIAL if quotes else _COMMENT).search(line, pos)
                if m is None:
                    parts.append(line[pos:])
                    break
                parts.append(line[pos : m.start()])
                if m.group(0) == '"':
                    m2 = _STRING_REST.match(line, m.end())
                    if m2 is not None:
                        parts.append(line[m.start() : m2.end()])
                        pos = m2.end()
                    else:  # a stray quote is an ordinary character (cpp warns only)
                        parts.append('"')
                        pos = m.end()
                        quotes = False  # and so are the quotes after it on this line
                    continue
                comment_line = i  # physical line holding the "/*" (continuations aside)
                end = line.find("*/", m.end())
                if end >= 0:
                    parts.append(" ")
                    pos = end + 2
                    continue
                # the comment goes on over the next physical lines
                while True:
                    if i >= n:
                        raise LcfgError("unterminated /* comment", file=file, line=comment_line)
                    nxt = lines[i]
                    i += 1
                    end = nxt.find("*/")
                    if end >= 0:
                        break
                line = nxt[end + 2 :]
                if line.endswith("\r"):
                    line = line[:-1]
                if not "".join(parts).strip():
                    start = i  # nothing before the comment: the text starts on this line
                if line.endswith("\\") and i < n:  # the rest may continue too
                    line, i = _continue(line, lines, i)
                parts.append(" ")
                quotes = True
                pos = 0
            line = "".join(parts)
        stripped = line.strip()
        if not stripped:
            continue
        if stripped[0] == "#":
            m = _DIRECTIVE.match(stripped)
            if m is None:  # pragma: no cover - the pattern matches any '#...'
                continue
            out.append(LogicalLine(start, m.group(1) or "", _collapse(m.group(2))))
        else:
            out.append(LogicalLine(start, None, _collapse(stripped) if '"' in stripped else " ".join(stripped.split())))
    return out


_CACHE: dict[str, tuple[tuple[int, int], list[LogicalLine]]] = {}


_CACHED_LINES = [0]


def clear_cache() -> None:
    """Forget every cached file (tests use it)."""
    _CACHE.clear()
    _CACHED_LINES[0] = 0


def _decode(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark, as cpp accepts it
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_text(path: str, nofollow: bool = False) -> str:
    """Read a profile or header as text; LcfgError when it cannot be read.

    ``nofollow``: refuse a symlink (an include is opened by its checked real path, so a
    link swapped in after the check cannot lead out).
    """
    try:
        fd = os.open(path, os.O_RDONLY | (os.O_NOFOLLOW if nofollow else 0))
        with os.fdopen(fd, "rb") as fh:
            data = fh.read(MAX_FILE_SIZE + 1)
    except OSError as exc:
        raise LcfgError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    if len(data) > MAX_FILE_SIZE:
        raise LcfgError(f"file larger than {MAX_FILE_SIZE} bytes", file=path)
    return _decode(data)


def inside(real: str, roots: list[str]) -> bool:
    """Whether the real path ``real`` is one of ``roots`` (real paths) or below one."""
    return any(real == root or real.startswith(root.rstrip("/") + "/") for root in roots)


def read_lines(
    path: str, cache: bool = True, inputs: dict[str, tuple[int, int]] | None = None, nofollow: bool = False
) -> list[LogicalLine]:
    """Logical lines of the file at ``path`` (absolute), cached per process.

    ``inputs`` records ``path -> (mtime_ns, size)`` of the file read (the inventory
    cache is keyed by every file a profile read).
    """
    try:
        st = os.stat(path)
    except OSError as exc:
        raise LcfgError(f"cannot read file: {exc.strerror or exc}", file=path) from None
    key = (st.st_mtime_ns, st.st_size)
    if inputs is not None:
        inputs[path] = key
    if st.st_size > MAX_FILE_SIZE:
        raise LcfgError(f"file larger than {MAX_FILE_SIZE} bytes", file=path)
    if cache:
        hit = _CACHE.get(path)
        if hit is not None and hit[0] == key:
            return hit[1]
    lines = tokenize(read_text(path, nofollow), path)
    if cache:
        if len(_CACHE) >= _CACHE_LIMIT or _CACHED_LINES[0] + len(lines) > _CACHE_LINES_LIMIT:
            clear_cache()
        _CACHE[path] = (key, lines)
        _CACHED_LINES[0] += len(lines)
    return lines


# ---------------------------------------------------------------- macros

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|\.?\d[\w.]*|[A-Za-z_]\w*')


def expand(
    text: str,
    defines: dict[str, str],
    _blocked: frozenset[str] = frozenset(),
    _depth: int = 0,
    _budget: list[int] | None = None,
) -> str:
    """Replace every defined identifier token of ``text`` by its (expanded) body.

    Whole tokens only, not inside string literals or numbers; a macro is not
    expanded inside its own expansion (cpp rule), so ``#define X X`` is harmless.
    Raises ValueError when the expansion runs away (too deep or too large).
    """
    if not defines or not text:
        return text
    if _depth > MAX_EXPANSION_DEPTH:
        raise ValueError("macro expansion nested too deeply")
    budget = _budget if _budget is not None else [MAX_EXPANSION]

    def repl(m: re.Match[str]) -> str:
        tok = m.group(0)
        body = defines.get(tok)
        if body is None or tok in _blocked:
            return tok
        budget[0] -= len(body) + 16
        if budget[0] < 0:
            raise ValueError("macro expansion too large")
        return expand(body, defines, _blocked | {tok}, _depth + 1, budget)

    return _TOKEN.sub(repl, text)


_WORD = re.compile(r"[A-Za-z_]\w*")
_DEFINE = re.compile(r"([A-Za-z_]\w*)(\(?)\s*(.*)\Z", re.S)
_IDENT = re.compile(r"[A-Za-z_]\w*\Z")


class _CondFrame:
    __slots__ = ("line", "parent_active", "taken", "active", "seen_else")

    def __init__(self, line: int, parent_active: bool, cond: bool) -> None:
        self.line = line
        self.parent_active = parent_active
        self.taken = cond
        self.active = parent_active and cond
        self.seen_else = False


class Preprocessor:
    """Walk a profile and its includes; report the active statements.

    ``defines`` is updated in place by ``#define`` / ``#undef``.
    """

    def __init__(
        self,
        include_path: list[str] | None = None,
        defines: dict[str, str] | None = None,
        allowed_dirs: list[str] | None = None,
    ) -> None:
        self.include_path = [os.path.abspath(str(p)) for p in (include_path or [])]
        # where #include may lead (real paths): the include path, the allowed
        # directories (the loader passes the sources' directories), the profile's directory
        self.roots = [os.path.realpath(p) for p in self.include_path + list(allowed_dirs or [])]
        #: every file read: path -> (mtime_ns, size)
        self.inputs: dict[str, tuple[int, int]] = {}
        self.bytes_read = 0
        self.lines = 0
        self.includes = 0
        self.expanded = 0
        self._line: int | None = None  # the line being walked: where an unexpected error is
        self.defines: dict[str, str] = {}
        for key, value in (defines or {}).items():
            if not isinstance(key, str) or not _IDENT.match(key):
                raise LcfgError(f"invalid macro name in defines: {key!r}")
            self.defines[key] = "1" if value is None else " ".join(str(value).split())
        self._stack: list[str] = []
        self._emit: Callable[[str, LogicalLine], None] = lambda file, ll: None
        self.version = 0

    # -- public
    def run(self, path: str, text: str | None, on_statement: Callable[[str, LogicalLine], None]) -> None:
        """Call ``on_statement(file, line)`` for each active statement, in cpp output order."""
        path = os.path.abspath(path)
        self.roots.append(os.path.realpath(os.path.dirname(path)))
        if text is not None:
            lines = tokenize(text, path)
        else:
            lines = read_lines(path, cache=False, inputs=self.inputs)
            self.bytes_read += self.inputs[path][1]
        self._emit = on_statement
        self._walk(path, lines)

    def macro_search(self) -> Callable[[str], object] | None:
        """A ``search(text)`` that is truthy when ``text`` may use a defined macro.

        None when nothing is defined. A set lookup per word: a regex of every name,
        rebuilt after each ``#define``, was quadratic (a profile alternating
        ``#define`` and statements took minutes).
        """
        return self._uses_a_define if self.defines else None

    def _uses_a_define(self, text: str) -> bool | None:
        """True when a word of ``text`` is a defined name, else None (like a failed match)."""
        return None if self.defines.keys().isdisjoint(_WORD.findall(text)) else True

    def expand(self, text: str) -> str:
        """:func:`expand` with the current defines; fast when no defined name occurs.

        Raises ValueError when the expansion runs away.
        """
        search = self.macro_search()
        if search is None or search(text) is None:
            return text
        return self.count(expand(text, self.defines))

    def count(self, expanded: str) -> str:
        """Charge ``expanded`` to the profile's expansion budget; ValueError when over it."""
        self.expanded += len(expanded)
        if self.expanded > MAX_PROFILE_EXPANSION:
            raise ValueError(f"macro expansion over the profile's budget of {MAX_PROFILE_EXPANSION} characters")
        return expanded

    # -- internals
    def _walk(self, path: str, lines: list[LogicalLine]) -> None:
        self._stack.append(path)
        try:
            self._walk_lines(path, lines)
        except LcfgError:
            raise
        except Exception as exc:  # a reader bug or an exhausted resource: still file:line
            raise LcfgError(
                f"cannot read this line: {type(exc).__name__}: {excerpt(exc, 200)}", file=path, line=self._line
            ) from exc
        self._stack.pop()

    def _walk_lines(self, path: str, lines: list[LogicalLine]) -> None:
        self.lines += len(lines)
        if self.lines > MAX_PROFILE_LINES:  # named at the #include that went over
            nested = len(self._stack) > 1
            raise LcfgError(
                f"the profile and its includes are over {MAX_PROFILE_LINES} lines",
                file=self._stack[-2] if nested else path,
                line=self._line if nested else None,
            )
        emit = self._emit
        conds: list[_CondFrame] = []
        active = True
        for ll in lines:
            self._line = ll.line
            d = ll.directive
            if d is None:
                if active:
                    emit(path, ll)
                continue
            if d in ("if", "ifdef", "ifndef"):
                cond = self._condition(d, ll, path) if active else False
                conds.append(_CondFrame(ll.line, active, cond))
                active = conds[-1].active
            elif d == "elif":
                if not conds or conds[-1].seen_else:
                    raise LcfgError("#elif without matching #if", file=path, line=ll.line)
                f = conds[-1]
                if f.parent_active and not f.taken:
                    cond = self._condition("if", ll, path)
                    f.taken = cond
                    f.active = cond
                else:
                    f.active = False
                active = f.active
            elif d == "else":
                if not conds or conds[-1].seen_else:
                    raise LcfgError("#else without matching #if", file=path, line=ll.line)
                f = conds[-1]
                f.seen_else = True
                f.active = f.parent_active and not f.taken
                f.taken = True
                active = f.active
            elif d == "endif":
                if not conds:
                    raise LcfgError("#endif without matching #if", file=path, line=ll.line)
                conds.pop()
                active = conds[-1].active if conds else True
            elif not active:
                continue
            elif d == "define":
                self._define(ll, path)
            elif d == "undef":
                name = ll.text.split(" ", 1)[0] if ll.text else ""
                if not _IDENT.match(name):
                    raise LcfgError("#undef needs a macro name", file=path, line=ll.line)
                self.defines.pop(name, None)
                self.version += 1
            elif d == "include":
                self._include(ll, path)
            elif d == "error":
                raise LcfgError(f"#error {excerpt(ll.text, 200, quote=False)}".rstrip(), file=path, line=ll.line)
            elif d in ("warning", "pragma", "ident", "line", "") or d.isdigit():
                continue  # harmless for profiles
            else:
                raise LcfgError(f"unknown preprocessor directive #{d}", file=path, line=ll.line)
        if conds:
            raise LcfgError("#if/#ifdef/#ifndef without #endif", file=path, line=conds[-1].line)

    def _define(self, ll: LogicalLine, path: str) -> None:
        m = _DEFINE.match(ll.text)
        if m is None:
            raise LcfgError("#define needs a macro name", file=path, line=ll.line)
        name, paren, body = m.groups()
        if paren:
            raise LcfgError(f"function-like macro {name}(...) is not supported", file=path, line=ll.line)
        if "##" in body:
            raise LcfgError(f"token pasting (##) in macro {name} is not supported", file=path, line=ll.line)
        self.defines[name] = body.strip()
        self.version += 1

    def _include(self, ll: LogicalLine, path: str) -> None:
        spec = ll.text
        if spec and spec[0] not in '<"':
            try:
                spec = self.count(expand(spec, self.defines)).strip()
            except ValueError as exc:
                raise LcfgError(str(exc), file=path, line=ll.line) from None
        if len(spec) >= 2 and spec[0] == "<" and spec.endswith(">"):
            name, dirs = spec[1:-1].strip(), list(self.include_path)
        elif len(spec) >= 2 and spec[0] == '"' and spec.endswith('"'):
            name, dirs = spec[1:-1], [os.path.dirname(path)] + self.include_path
        else:
            raise LcfgError(f'#include expects <file> or "file", got {excerpt(ll.text)}', file=path, line=ll.line)
        if not name or "\x00" in name:
            raise LcfgError("#include with an empty file name", file=path, line=ll.line)
        found = real = None
        refused = False
        for d in dirs:
            candidate = os.path.normpath(os.path.join(d, name))
            # symlinks and ../ resolved: a profile reads only site files, never /etc/shadow.
            # Containment is checked before existence, so the error does not tell a profile
            # whether a file outside the site exists.
            real = os.path.realpath(candidate)
            if not inside(real, self.roots):
                refused = True
                continue
            if os.path.isfile(real):
                found = candidate
                break
        if found is None or real is None:
            if refused:
                raise LcfgError(
                    f"include file {excerpt(name, 200, quote=False)} is outside the "
                    "include path and the sources' directories (symlinks "
                    "resolved): refused",
                    file=path,
                    line=ll.line,
                )
            where = ", ".join(dirs) if dirs else "no include path configured"
            raise LcfgError(
                f"include file {excerpt(name, 200, quote=False)} not found (searched: {where})", file=path, line=ll.line
            )
        if found in self._stack:
            chain = " -> ".join(self._stack[self._stack.index(found) :] + [found])
            raise LcfgError(f"include cycle: {chain}", file=path, line=ll.line)
        if len(self._stack) >= MAX_INCLUDE_DEPTH:
            raise LcfgError("#include nested too deeply", file=path, line=ll.line)
        self.includes += 1
        if self.includes > MAX_INCLUDES:
            raise LcfgError(
                f"more than {MAX_INCLUDES} #include lines followed for this profile", file=path, line=ll.line
            )
        try:
            lines = read_lines(real, inputs=self.inputs, nofollow=True)
        except LcfgError as exc:
            if exc.line is not None:
                raise LcfgError(exc.problem, file=found, line=exc.line) from None
            raise LcfgError(f"cannot read included file {found}: {exc.problem}", file=path, line=ll.line) from None
        self.bytes_read += self.inputs[real][1]
        if self.bytes_read > MAX_PROFILE_INPUT:
            raise LcfgError(f"the profile and its includes are over {MAX_PROFILE_INPUT} bytes", file=path, line=ll.line)
        self._walk(found, lines)

    def _condition(self, d: str, ll: LogicalLine, path: str) -> bool:
        text = ll.text
        if d in ("ifdef", "ifndef"):
            name = text.split(" ", 1)[0] if text else ""
            if not _IDENT.match(name):
                raise LcfgError(f"#{d} needs a macro name", file=path, line=ll.line)
            return (name in self.defines) == (d == "ifdef")
        try:
            return _eval_if(text, self.defines, self.count) != 0
        except ValueError as exc:
            raise LcfgError(f"bad #{d} expression {excerpt(text)}: {exc}", file=path, line=ll.line) from None


# ---------------------------------------------------------------- #if expressions

_IF_TOKEN = re.compile(r"\s*(?:(\d+)[uUlL]*|([A-Za-z_]\w*)|(&&|\|\||==|!=|<=|>=|[!()<>+\-*/%?:]))")
_DEFINED = re.compile(r"\bdefined\s*(?:\(\s*([A-Za-z_]\w*)\s*\)|([A-Za-z_]\w*))")


def _eval_if(text: str, defines: dict[str, str], count: Callable[[str], str] | None = None) -> int:
    """Value of a ``#if`` expression; ``count`` charges the expansion to a budget."""
    if not text.strip():
        raise ValueError("empty expression")
    text = _DEFINED.sub(lambda m: "1" if (m.group(1) or m.group(2)) in defines else "0", text)
    text = expand(text, defines)  # bounded by MAX_EXPANSION
    if count is not None:
        text = count(text)
    toks: list[tuple[str, object]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _IF_TOKEN.match(text, pos)
        if m is None:
            raise ValueError(f"unexpected {text[pos:].strip()[:20]!r}")
        pos = m.end()
        if m.group(1) is not None:
            if len(m.group(1)) > 20:  # before int(): a 5,000-digit literal is slow to convert
                raise ValueError("integer constant too large")
            toks.append(("n", _in_range(int(m.group(1)))))
        elif m.group(2) is not None:
            toks.append(("n", 0))  # undefined identifiers are 0 (cpp)
        else:
            toks.append(("o", m.group(3)))
    parser = _IfParser(toks)
    value = parser.expr(0)
    if parser.pos != len(toks):
        raise ValueError("trailing tokens")
    return value


_BINARY = {"||": 1, "&&": 2, "==": 3, "!=": 3, "<": 4, ">": 4, "<=": 4, ">=": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6}


class _IfParser:
    """Precedence climbing over ``#if`` tokens. Like cpp, the operand ``&&``, ``||`` or
    ``?:`` does not use is parsed but not evaluated: ``0 && (1/0)`` is 0, not an error."""

    def __init__(self, toks: list[tuple[str, object]]) -> None:
        self.toks = toks
        self.pos = 0
        self.depth = 0
        self.skip = 0  # > 0 while parsing an operand that is not evaluated

    def _nest(self) -> None:
        self.depth += 1
        if self.depth > 100:
            raise ValueError("expression nested too deeply")

    def _operand(self, used: bool, parse: Callable[[], int]) -> int:
        if not used:
            self.skip += 1
        try:
            return parse()
        finally:
            if not used:
                self.skip -= 1

    def _apply(self, op: str, a: int, b: int) -> int:
        if self.skip:
            try:
                return _apply(op, a, b)
            except ValueError:  # not evaluated: its overflow or division by zero does not count
                return 0
        return _apply(op, a, b)

    def _peek(self) -> tuple[str, object] | None:
        return self.toks[self.pos] if self.pos < len(self.toks) else None

    def unary(self) -> int:
        tok = self._peek()
        if tok is None:
            raise ValueError("unexpected end")
        self.pos += 1
        kind, val = tok
        if kind == "n":
            return int(val)  # type: ignore[call-overload]
        self._nest()
        try:
            if val == "!":
                return int(not self.unary())
            if val == "-":
                return self._apply("-", 0, self.unary())
            if val == "+":
                return self.unary()
            if val == "(":
                v = self.expr(0)
                if self._peek() != ("o", ")"):
                    raise ValueError("missing )")
                self.pos += 1
                return v
        finally:
            self.depth -= 1
        raise ValueError(f"unexpected {val!r}")

    def expr(self, min_prec: int) -> int:
        left = self.unary()
        while True:
            tok = self._peek()
            if tok == ("o", "?") and min_prec == 0:
                return self._conditional(left)
            if tok is None or tok[0] != "o" or tok[1] not in _BINARY:
                return left
            op = str(tok[1])
            prec = _BINARY[op]
            if prec < min_prec:
                return left
            self.pos += 1
            used = not (op == "&&" and not left or op == "||" and left)
            right = self._operand(used, lambda tighter=prec + 1: self.expr(tighter))
            left = self._apply(op, left, right)

    def _conditional(self, cond: int) -> int:
        """``cond ? a : b`` (right-associative, lowest precedence; the current token is ``?``)."""
        self.pos += 1
        self._nest()
        try:
            when_true = self._operand(bool(cond), lambda: self.expr(0))
            if self._peek() != ("o", ":"):
                raise ValueError("'?' without ':'")
            self.pos += 1
            when_false = self._operand(not cond, lambda: self.expr(0))
        finally:
            self.depth -= 1
        return when_true if cond else when_false


def _in_range(value: int) -> int:
    if not -MAX_IF_INTEGER - 1 <= value <= MAX_IF_INTEGER:
        raise ValueError("integer overflow (cpp computes in 64 bits)")
    return value


def _apply(op: str, a: int, b: int) -> int:
    return _in_range(_arith(op, a, b))


def _arith(op: str, a: int, b: int) -> int:
    if op == "||":
        return int(bool(a or b))
    if op == "&&":
        return int(bool(a and b))
    if op == "==":
        return int(a == b)
    if op == "!=":
        return int(a != b)
    if op == "<":
        return int(a < b)
    if op == ">":
        return int(a > b)
    if op == "<=":
        return int(a <= b)
    if op == ">=":
        return int(a >= b)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if b == 0:
        raise ValueError("division by zero")
    # C truncates toward zero; integer arithmetic (a float quotient overflows on big values)
    quotient = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
    return quotient if op == "/" else a - b * quotient
