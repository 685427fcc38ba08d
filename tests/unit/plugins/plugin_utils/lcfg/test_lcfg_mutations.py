"""The mutation primitives and the macro table (reference lcfg.md section 1.7)."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import mutations as m

# (macro, old value, arguments, expected new value)
TABLE = [
    # mSET: replace
    ("mSET", None, ["x y"], "x y"),
    ("mSET", "old", [""], ""),
    # mADD: add_tags, dedup, order kept
    ("mADD", None, ["a"], "a"),
    ("mADD", "", ["a b"], "a b"),
    ("mADD", "a b", ["b c"], "a b c"),
    ("mADD", "a b", ["a"], "a b"),
    ("mADD", "ab", ["a"], "ab a"),  # whole-word test, not substring
    ("mADD", "a ", ["b"], "a b"),  # no extra space after a separator
    ("mADD", "a", [""], "a"),
    # mEXTRA / mAPPEND: append_tag, duplicates allowed
    ("mEXTRA", "a", ["a"], "a a"),
    ("mEXTRA", None, ["a b"], "a b"),
    ("mAPPEND", "x", ["y"], "x y"),
    # mPREPEND: prepend_tag
    ("mPREPEND", "b", ["a"], "a b"),
    ("mPREPEND", "c", ["a b"], "a b c"),
    ("mPREPEND", None, ["a"], "a"),
    # mREMOVE: first whole-word occurrence and the separators after it
    ("mREMOVE", "start run", ["start"], "run"),
    ("mREMOVE", "a b a", ["a"], "b a"),
    ("mREMOVE", "a b c", ["c"], "a b "),  # core removes only the following separators
    ("mREMOVE", "a b", ["x"], "a b"),  # absent tag: success, unchanged
    ("mREMOVE", "ab b", ["b"], "ab "),
    ("mREMOVE", "a", ["a"], ""),
    ("mREMOVE", None, ["a"], None),  # unset stays unset
    ("mREMOVE", "a b c", ["a c"], "b "),
    # mREPLACE: first whole tag
    ("mREPLACE", "a b c", ["b", "x"], "a x c"),
    ("mREPLACE", "ab b", ["b", "x"], "ab x"),
    ("mREPLACE", "a b", ["b", ""], "a "),  # empty new = removal
    # mSUBST: first substring, not word-bounded
    ("mSUBST", "foobar bar", ["bar", "X"], "fooX bar"),
    ("mSUBST", "abc", ["zz", "X"], "abc"),
    ("mSUBST", "abc", ["b", ""], "ac"),
    ("mSUBST", None, ["b", "x"], None),
    # mCONCAT: no separator
    ("mCONCAT", "0,1", [",2"], "0,1,2"),
    ("mCONCAT", None, ["0,1,2,3"], "0,1,2,3"),
    ("mCONCAT", "x", [""], "x"),
]


@pytest.mark.parametrize("macro,old,args,expected", TABLE)
def test_macro_table(macro, old, args, expected):
    for name in (macro, macro + "Q"):
        mut = m.MUTATIONS[name]
        assert mut.nargs == len(args)
        assert mut.quoted == name.endswith("Q")
        assert mut.apply(old, *args) == expected


@pytest.mark.parametrize(
    "old,args",
    [
        ("a b", ["x", "y"]),  # absent
        ("", ["a", "b"]),  # empty value
        (None, ["a", "b"]),  # unset
    ],
)
def test_replace_tag_failures(old, args):
    with pytest.raises(m.MutationError):
        m.MUTATIONS["mREPLACE"].apply(old, *args)


def test_table_is_complete_and_tag_flags():
    tag_ops = {"mADD", "mEXTRA", "mAPPEND", "mPREPEND", "mREMOVE", "mREPLACE"}
    plain_ops = {"mSET", "mSUBST", "mCONCAT"}
    assert {k for k in m.MUTATIONS if not k.endswith("Q")} == tag_ops | plain_ops
    for name, mut in m.MUTATIONS.items():
        base = name[:-1] if mut.quoted else name
        assert mut.tags == (base in tag_ops), name


def test_primitives_directly():
    assert m.value_append(None, "") is None
    assert m.value_prepend("b", "a") == "ab"
    assert m.value_prepend(None, "") is None
    assert m.value_append_tag("a\t", "b") == "a\tb"
    assert m.value_prepend_tag(" a", "b") == "b a"
    assert m.value_has_tag("a bc", "bc")
    assert not m.value_has_tag("a bc", "b")
    assert not m.value_has_tag(None, "a")
    assert m.value_remove("abcabc", "bc") == "aabc"
    assert m.value_remove_tags("a\tb\nc", "b") == "a\tc"


@pytest.mark.parametrize(
    "name,ok",
    [("xen", True), ("x1_y", True), ("1x", False), ("_x", False), ("a-b", False), ("", False), ("a.b", False)],
)
def test_valid_name(name, ok):
    assert m.valid_name(name) is ok


@pytest.mark.parametrize(
    "tag,ok", [("0", True), ("node1", True), ("_a", True), ("a-b", False), ("", False), ("a b", False)]
)
def test_valid_tag(tag, ok):
    assert m.valid_tag(tag) is ok


@pytest.mark.parametrize("value,ok", [("", True), ("a b\tc", True), ("0,1", False), ("a-b", False)])
def test_valid_list(value, ok):
    assert m.valid_list(value) is ok
