"""The cpp subset's building blocks and LCFG context expressions."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import cpp
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.profile import (
    ContextError,
    combine_contexts,
    context_priority,
)


def test_tokenize_logical_lines_and_numbers():
    text = (
        "a.b 1\n"
        "/* c1\n c2 */ a.c 2\n"
        "  #  define  X   1   2  \n"
        "a.d 3 \\\n   4\n"
        "\n"
        'a.e "x  /* y */  z" /* gone */\n'
        "a.f 5 /* a */ /* b */ 6\n"
    )
    lines = cpp.tokenize(text, "f")
    got = [(ll.line, ll.directive, ll.text) for ll in lines]
    assert got == [
        (1, None, "a.b 1"),
        (3, None, "a.c 2"),  # where its text starts, after the comment
        (4, "define", "X 1 2"),
        (5, None, "a.d 3 4"),
        (8, None, 'a.e "x  /* y */  z"'),
        (9, None, "a.f 5 6"),
    ]


def test_tokenize_stray_quote_is_literal():
    [ll] = cpp.tokenize('a.b 12" disk /* c */ x\n', "f")
    assert ll.text == 'a.b 12" disk x'


def test_unterminated_comment_line():
    with pytest.raises(LcfgError) as info:
        cpp.tokenize("a.b 1\na.c 2 /* open\nmore\n", "f")
    assert (info.value.file, info.value.line) == ("f", 2)


@pytest.mark.parametrize(
    "text,defines,expected",
    [
        ("A", {"A": "B", "B": "c"}, "c"),
        ("A", {"A": "A x"}, "A x"),  # not self-recursive
        ("A", {"A": "B", "B": "A"}, "A"),  # nor mutually
        ("AB A_B A.B 1A", {"A": "z", "B": "y"}, "AB A_B z.y 1A"),
        ('"A" A', {"A": "z"}, '"A" z'),  # not inside strings
        ("", {"A": "z"}, ""),
    ],
)
def test_expand(text, defines, expected):
    assert cpp.expand(text, defines) == expected


@pytest.mark.parametrize(
    "expr,value",
    [
        ("1 || 0 && 0", 1),
        ("(1 || 0) && 0", 0),
        ("2 - 1 - 1 == 0", 1),
        ("!0 == 1", 1),
        ("-1 < 0", 1),
        ("7 / 2 == 3 && 7 % 2 == 1", 1),
        ("defined(A) + defined B", 2),
        ("A == 5", 1),
        ("UNDEFINED == 0", 1),
        ("3 >= 3 && 2 <= 1", 0),
        ("10L > 9u", 1),
    ],
)
def test_if_expressions(expr, value):
    assert cpp._eval_if(expr, {"A": "5", "B": ""}) == value


@pytest.mark.parametrize(
    "expr,value",
    [
        # red team F13: cpp does not evaluate the operand && / || / ?: leaves out
        ("0 && (1/0)", 0),
        ("1 || 1 % 0", 1),
        ("0 && 9223372036854775807 + 1", 0),
        ("1 ? 2 : 1/0", 2),
        ("0 ? 1/0 : 3", 3),
        ("A == 5 ? B + 7 : 0", 7),
        ("0 ? 1 : 0 ? 2 : 3", 3),
        ("1 ? 0 ? 4 : 5 : 6", 5),
        ("(1 ? 2 : 3) + 1", 3),
        ("1 || 0 ? 8 : 9", 8),
        ("0 && -(-9223372036854775807 - 1)", 0),
    ],
)
def test_if_short_circuits_and_conditional(expr, value):
    assert cpp._eval_if(expr, {"A": "5", "B": ""}) == value


@pytest.mark.parametrize(
    "expr,problem",
    [
        ("1 && (1/0)", "division by zero"),
        ("0 || 1 % 0", "division by zero"),
        ("1 ? 1", "'?' without ':'"),
        ("1 : 2", "trailing"),
        ("0 ? 1/0 : 1/0", "division by zero"),
        ("1 ? " * 150 + "1" + " : 1" * 150, "nested too deeply"),
    ],
)
def test_if_evaluated_operands_still_fail(expr, problem):
    with pytest.raises(ValueError, match=problem):
        cpp._eval_if(expr, {})


def test_include_unreadable_names_includer(tmp_path, monkeypatch):
    (tmp_path / "h.h").write_text("x.y 1\n")
    orig = cpp.read_lines

    def unreadable(path, cache=True, **kwargs):
        if path.endswith("h.h"):
            raise LcfgError("cannot read file: Permission denied", file=path)
        return orig(path, cache, **kwargs)

    monkeypatch.setattr(cpp, "read_lines", unreadable)
    pp = cpp.Preprocessor([str(tmp_path)])
    with pytest.raises(LcfgError) as info:
        pp.run(str(tmp_path / "host"), "\n#include <h.h>\n", lambda f, ll: None)
    assert (info.value.file, info.value.line) == (str(tmp_path / "host"), 2)
    assert "Permission denied" in info.value.problem


# ------------------------------------------------------------------ contexts

CTX = {"install": (1, "true"), "os": (2, "sl7"), "lab": (3, "no")}


@pytest.mark.parametrize(
    "expr,with_ctx,without",
    [
        ("", 0, 0),
        ("install", 1, -1),
        ("!install", -1, 1),
        ("os = sl7", 2, -1),
        ("os = sl6", -2, -1),
        ("os != sl6", 2, 1),
        ("os = 'sl7'", 2, -1),
        ('os = "sl7"', 2, -1),
        ("install = yes", 1, -1),
        ("install = no", -1, 1),
        ("lab = false", 3, 1),
        ("lab != off", -3, -1),
        ("install & os = sl7", 2, -1),
        ("install & lab", -3, -1),
        ("install | lab", 1, -1),
        ("lab | os = sl6", -3, -1),  # both false: the lesser
        ("install ^ lab", 1, -1),  # one true: the greater
        ("install ^ os = sl7", -2, -1),
        ("!(install & lab)", 3, 1),
        ("(install)", 1, -1),
    ],
)
def test_context_priority(expr, with_ctx, without):
    assert context_priority(expr, CTX) == with_ctx
    assert context_priority(expr) == without


@pytest.mark.parametrize(
    "expr", ["(", "a &", "a = ", "= a", "a b", "1a", "a = (", "!", "a $ b", "(" * 200 + "a" + ")" * 200]
)
def test_context_errors(expr):
    with pytest.raises(ContextError):
        context_priority(expr)


def test_combine_contexts():
    assert combine_contexts(None, None) is None
    assert combine_contexts("a", None) == "a"
    assert combine_contexts(None, "b") == "b"
    assert combine_contexts("b", "a") == "(a) & (b)"
