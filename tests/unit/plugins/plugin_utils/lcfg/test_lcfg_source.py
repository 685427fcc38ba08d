"""Source profile reader: cpp subset, statements, mutations, contexts, errors."""

from __future__ import annotations

import os
import textwrap

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.source import read_source_profile


@pytest.fixture
def site(tmp_path):
    """Write files under tmp_path: site({'include/a.h': '...'}) -> tmp_path."""

    def write(files: dict[str, str]):
        for rel, text in files.items():
            p = tmp_path / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(text))
        return tmp_path

    return write


def read(tmp_path, text, **kw):
    path = tmp_path / "host"
    path.write_text(textwrap.dedent(text))
    return read_source_profile(str(path), **kw)


def plain(profile):
    return profile.plain()


def expect_error(tmp_path, text, line, resource, problem, file=None, **kw):
    with pytest.raises(LcfgError) as info:
        read(tmp_path, text, **kw)
    err = info.value
    assert err.file == (file or str(tmp_path / "host"))
    assert err.line == line
    assert err.resource == resource
    assert problem in err.problem
    loc = f"{err.file}:{line}" if line is not None else err.file
    assert str(err).startswith(loc)
    if resource:
        assert f": {resource}: " in str(err)
    return err


# ------------------------------------------------------------------ statements


def test_plain_assignment_and_whitespace(tmp_path):
    p = read(
        tmp_path,
        """\
        dhclient.mac   00:11:85:F3:1D:3D
        inv.location   JCMB-2422 \t
        profile.packages  @a.rpms    @b.rpms
        xen.quoted   "keep   inner"   spaces
        xen.empty
        """,
    )
    assert plain(p) == {
        "dhclient": {"mac": "00:11:85:F3:1D:3D"},
        "inv": {"location": "JCMB-2422"},
        "profile": {"packages": "@a.rpms @b.rpms"},
        "xen": {"quoted": '"keep   inner" spaces', "empty": ""},
    }


def test_later_assignment_replaces_and_derivations(tmp_path):
    p = read(
        tmp_path,
        """\
        xen.a one
        !xen.a mADD(two)
        !xen.a mADD(three)
        xen.b first
        xen.b second
        """,
    )
    f = str(tmp_path / "host")
    assert p.get("xen", "a").value == "one two three"
    assert p.get("xen", "a").derivation == f"{f}:1 {f}:2 {f}:3"
    assert p.get("xen", "a").first_location == (f, 3)
    assert p.get("xen", "b").value == "second"
    assert p.get("xen", "b").derivation == f"{f}:5"


def test_name_and_path(tmp_path):
    p = read(tmp_path, "xen.a b\n")
    assert p.name == "host" and p.path == str(tmp_path / "host")
    p = read(tmp_path, "xen.a b\n", name="other")
    assert p.name == "other"
    p = read_source_profile("relative-name", text="xen.a b\n")
    assert p.name == "relative-name" and os.path.isabs(p.path)


MACRO_CASES = [
    # statement lines -> expected xen.r
    (["!xen.r mSET(my first change)"], "my first change"),
    (["!xen.r mSET (node1)"], "node1"),
    (["!xen.r mSET(  spaced   out  )"], "spaced out"),
    (["!xen.r mSET()"], ""),
    (["!xen.r mSET(f(a, b))"], "f(a, b)"),  # commas in nested parens
    (['!xen.r mSETQ("a, b (c) ")'], "a, b (c) "),  # Q keeps spaces, commas, parens
    (['!xen.r mSETQ("say \\"hi\\"")'], 'say "hi"'),  # \" escapes
    (['!xen.r mSETQ("back\\\\slash")'], "back\\slash"),
    (['!xen.r mCONCATQ ("0,1,2,3")'], "0,1,2,3"),
    (["xen.r 0,1", '!xen.r mCONCATQ(",2")'], "0,1,2"),
    (["!xen.r mCONCAT(ab)", "!xen.r mCONCAT(cd)"], "abcd"),
    (["!xen.r mADD(a b)", "!xen.r mADD(b c)"], "a b c"),
    (['!xen.r mADDQ("a b")', "!xen.r mADD(a)"], "a b"),
    (["!xen.r mEXTRA(a)", "!xen.r mEXTRA(a)"], "a a"),
    (["xen.r b", "!xen.r mPREPEND(a)"], "a b"),
    (["xen.r a b a", "!xen.r mREMOVE(a)"], "b a"),
    (["xen.r a b", "!xen.r mREMOVE(zz)"], "a b"),
    (["xen.r a b c", "!xen.r mREPLACE(b, x)"], "a x c"),
    (["xen.r a b c", '!xen.r mREPLACEQ("b", "x")'], "a x c"),
    (["xen.r foobar bar", "!xen.r mSUBST(bar, X Y)"], "fooX Y bar"),
    (["xen.r a,b c", '!xen.r mSUBSTQ("a,b", "d,e")'], "d,e c"),
    (["xen.r x", "!xen.r mSUBST(x, )"], ""),
]


@pytest.mark.parametrize("lines,expected", MACRO_CASES)
def test_macros_in_profiles(tmp_path, lines, expected):
    p = read(tmp_path, "\n".join(lines) + "\n")
    assert p.value("xen", "r") == expected


def test_madd_on_unset_and_mremove_on_unset(tmp_path):
    p = read(
        tmp_path,
        """\
        !xen.list mADD(a)
        !xen.never mREMOVE(a)
        """,
    )
    assert p.value("xen", "list") == "a"
    assert p.get("xen", "never") is None  # still unset: no resource


def test_mutation_macro_from_define(tmp_path):
    p = read(
        tmp_path,
        """\
        #define ADD_XEN mADD(xen)
        !profile.components ADD_XEN
        """,
    )
    assert p.value("profile", "components") == "xen"


# ------------------------------------------------------------------ macros (#define)


def test_define_expansion_in_values(tmp_path):
    p = read(
        tmp_path,
        """\
        #define SIZE 20G
        #define DISK SIZE disk
        #define SELF SELF again
        #define G 99
        xen.a SIZE
        !xen.b mSET(DISK)
        xen.c SIZE2 XSIZE SIZE_ SIZE
        !xen.d mSETQ("SIZE")
        xen.e SELF
        xen.f 20G G.G
        xen.SIZE literal-key
        """,
    )
    assert plain(p)["xen"] == {
        "a": "20G",
        "b": "20G disk",
        "c": "SIZE2 XSIZE SIZE_ 20G",
        "d": "SIZE",
        "e": "SELF again",
        "f": "20G 99.99",
        "SIZE": "literal-key",
    }


def test_defines_argument_undef_and_commas(tmp_path):
    p = read(
        tmp_path,
        """\
        #define CPUS 0,1,2,3
        !xen.cpus mSET(CPUS)
        xen.site SITE
        #undef SITE
        xen.site2 SITE
        !xen.list mADD(TAGS)
        """,
        defines={"SITE": "ed.ac.uk", "TAGS": "a b", "FLAG": None},
    )
    assert p.value("xen", "cpus") == "0,1,2,3"  # args split before expansion, like cpp
    assert p.value("xen", "site") == "ed.ac.uk"
    assert p.value("xen", "site2") == "SITE"
    assert p.value("xen", "list") == "a b"


def test_e3_seed_example(tmp_path):
    p = read(
        tmp_path,
        """\
        #define XEN_ROOTSIZE 20G
        !profile.components      mADD(xen)
        !xen.virtualmachines     mADD(profiledev node1)
        !xen.name_profiledev     mSET(profiledev)
        !xen.type_profiledev     mSET(hvm)
        !xen.disks_profiledev    mADD(root)
        !xen.cpus_node1          mCONCATQ ("0,1,2,3")
        !xen.disks_node1         mADD(root swap)
        !xen.diskname_node1_root mSET (node1)
        !xen.disksize_node1_root mSET(XEN_ROOTSIZE)          /* cpp expands to 20G */
        !xen.virtualgroup        mADD(cluster1)
        !xen.members_cluster1    mADD(node1 node2 node3)
        !xen.members_cluster1    mREMOVE(node2)
        !xen.groupcpus_cluster1  mSET(2)
        """,
    )
    xen = plain(p)["xen"]
    assert p.value("profile", "components") == "xen"
    assert xen["virtualmachines"] == "profiledev node1"
    assert xen["cpus_node1"] == "0,1,2,3"
    assert xen["disks_node1"] == "root swap"
    assert xen["diskname_node1_root"] == "node1"
    assert xen["disksize_node1_root"] == "20G"
    assert xen["members_cluster1"] == "node1 node3"
    assert xen["groupcpus_cluster1"] == "2"


def test_e2_list_mutations_and_continuation(tmp_path):
    p = read(
        tmp_path,
        """\
        updaterpms.methods   start run
        !updaterpms.methods  mREMOVE(start)
        profile.packages     @lcfg_sl5_base.rpms \\
                             @lcfg_sl5_updates.rpms
        !profile.packages    mSUBST(@lcfg_sl5_updates.rpms, @my_package_list.rpms @lcfg_sl5_updates.rpms)
        """,
    )
    assert p.value("updaterpms", "methods") == "run"
    assert p.value("profile", "packages") == ("@lcfg_sl5_base.rpms @my_package_list.rpms @lcfg_sl5_updates.rpms")
    f = str(tmp_path / "host")
    assert p.get("profile", "packages").derivation == f"{f}:3 {f}:5"


def test_e4_digit_tag(tmp_path):
    p = read(
        tmp_path,
        """\
        !xen.disks_node1 mADD(0)
        !xen.diskname_node1_0 mSET(node1)
        """,
    )
    assert p.value("xen", "disks_node1") == "0"
    assert p.value("xen", "diskname_node1_0") == "node1"


def test_e1_headers_via_include_path(site):
    root = site(
        {
            "inc/lcfg/os/ubuntu/minimal_focal.h": "profile.release focal\n",
            "inc/lcfg/hw/virtualbox.h": "!profile.components mADD(hw)\n",
            "inc/lcfg/options/lcfg-server.h": "!profile.components mADD(server)\n",
            "live/live/wire_c.h": "inv.wire c\n",
            "xenhost1": """\
            /* xenhost1 */
            #include <lcfg/os/ubuntu/minimal_focal.h>
            #include <lcfg/hw/virtualbox.h>
            #include <lcfg/options/lcfg-server.h>
            #include <live/wire_c.h>

            !profile.comment mSET(my first change)
            dhclient.mac   00:11:85:F3:1D:3D
            inv.sno        FRB4480GDR
            inv.location   JCMB-2422
            """,
        }
    )
    p = read_source_profile(str(root / "xenhost1"), include_path=[str(root / "inc"), str(root / "live")])
    assert p.value("profile", "comment") == "my first change"
    assert p.value("dhclient", "mac") == "00:11:85:F3:1D:3D"
    assert p.value("inv", "sno") == "FRB4480GDR"
    assert p.value("inv", "location") == "JCMB-2422"
    assert p.value("profile", "release") == "focal"
    assert p.value("profile", "components") == "hw server"
    assert p.value("inv", "wire") == "c"
    assert p.get("profile", "release").derivation == str(root / "inc/lcfg/os/ubuntu/minimal_focal.h") + ":1"


# ------------------------------------------------------------------ includes


def test_nested_includes_search_order_and_quoted(site):
    root = site(
        {
            "a/top.h": "#include <mid.h>\n!xen.order mADD(top)\n",
            "a/mid.h": '#include "sub/leaf.h"\n!xen.order mADD(mid)\n',
            "a/sub/leaf.h": '!xen.order mADD(leaf)\n#include "sibling.h"\n',
            "a/sub/sibling.h": "!xen.order mADD(sibling)\n",
            "b/top.h": "!xen.order mADD(shadowed)\n",
            "b/only_b.h": "!xen.order mADD(b)\n",
            "host": "#include <top.h>\n#include <only_b.h>\n!xen.order mADD(host)\n",
        }
    )
    p = read_source_profile(str(root / "host"), include_path=[str(root / "a"), str(root / "b")])
    assert p.value("xen", "order") == "leaf sibling mid top b host"


def test_include_guard_and_double_include(site):
    root = site(
        {
            "inc/g.h": "#ifndef G_H\n#define G_H\n!xen.n mEXTRA(g)\n#endif\n",
            "inc/u.h": "!xen.m mEXTRA(u)\n",
            "host": "#include <g.h>\n#include <g.h>\n#include <u.h>\n#include <u.h>\n",
        }
    )
    p = read_source_profile(str(root / "host"), include_path=[str(root / "inc")])
    assert p.value("xen", "n") == "g"
    assert p.value("xen", "m") == "u u"


def test_include_missing_names_file_and_line(site):
    root = site({"inc/a.h": "xen.a 1\n\n#include <missing.h>\n", "host": "\n#include <a.h>\n"})
    with pytest.raises(LcfgError) as info:
        read_source_profile(str(root / "host"), include_path=[str(root / "inc")])
    assert info.value.file == str(root / "inc/a.h") and info.value.line == 3
    assert "missing.h not found" in str(info.value)
    with pytest.raises(LcfgError) as info:
        read_source_profile(str(root / "host"))
    assert info.value.file == str(root / "host") and info.value.line == 2
    assert "no include path" in str(info.value)


def test_include_cycle(site):
    root = site({"inc/a.h": "#include <b.h>\n", "inc/b.h": "xen.x 1\n#include <a.h>\n", "host": "#include <a.h>\n"})
    with pytest.raises(LcfgError) as info:
        read_source_profile(str(root / "host"), include_path=[str(root / "inc")])
    assert info.value.file == str(root / "inc/b.h") and info.value.line == 2
    assert "include cycle" in info.value.problem
    assert "a.h -> " in info.value.problem


def test_include_bad_forms(tmp_path):
    expect_error(tmp_path, "#include foo.h\n", 1, None, "#include expects")
    expect_error(tmp_path, "#include <>\n", 1, None, "empty file name")


def test_include_via_macro(site):
    root = site({"inc/x.h": "xen.v 1\n", "host": "#define HDR <x.h>\n#include HDR\n"})
    p = read_source_profile(str(root / "host"), include_path=[str(root / "inc")])
    assert p.value("xen", "v") == "1"


def test_header_cache_sees_changes(site):
    root = site({"inc/x.h": "xen.v 1\n", "host": "#include <x.h>\n"})
    assert read_source_profile(str(root / "host"), include_path=[str(root / "inc")]).value("xen", "v") == "1"
    (root / "inc/x.h").write_text("xen.v 22\n")  # other size: cache key changes
    assert read_source_profile(str(root / "host"), include_path=[str(root / "inc")]).value("xen", "v") == "22"


# ------------------------------------------------------------------ conditionals


def test_conditionals(tmp_path):
    p = read(
        tmp_path,
        """\
        #define ON
        #ifdef ON
        xen.a yes
        #else
        xen.a no
        #endif
        #ifndef ON
        xen.b yes
        #else
        xen.b no
        #endif
        #ifdef OFF
          #ifdef ON
          xen.c inner
          #endif
          #bogus directive is skipped in a false branch
          xen.c bad syntax here !!!
        #elif defined(ON) && !defined(OFF)
          xen.c elif
        #else
          xen.c else
        #endif
        #if 0
        xen.d zero
        #elif 1 + 1 == 2 || OFF
        xen.d arith
        #endif
        #if defined ON
          #if !defined(OFF)
          xen.e nested
          #endif
        #endif
        """,
    )
    assert plain(p)["xen"] == {"a": "yes", "b": "no", "c": "elif", "d": "arith", "e": "nested"}


@pytest.mark.parametrize(
    "text,line,problem",
    [
        ("#ifdef X\nxen.a 1\n", 1, "without #endif"),
        ("xen.a 1\n#endif\n", 2, "#endif without"),
        ("#else\n", 1, "#else without"),
        ("#ifdef X\n#else\n#else\n#endif\n", 3, "#else without"),
        ("#ifdef X\n#else\n#elif 1\n#endif\n", 3, "#elif without"),
        ("#if\n#endif\n", 1, "bad #if"),
        ("#if (1\n#endif\n", 1, "bad #if"),
        ("#if 1 +\n#endif\n", 1, "bad #if"),
        ("#if 1/0\n#endif\n", 1, "division by zero"),
        ("#ifdef\n#endif\n", 1, "needs a macro name"),
        ("#define\n", 1, "needs a macro name"),
        ("#define F(x) x\n", 1, "function-like"),
        ("#define P a ## b\n", 1, "token pasting"),
        ("#undef 1\n", 1, "#undef needs"),
        ("\n#frobnicate\n", 2, "unknown preprocessor directive #frobnicate"),
        ("#error stop here\n", 1, "#error stop here"),
    ],
)
def test_preprocessor_errors(tmp_path, text, line, problem):
    expect_error(tmp_path, text, line, None, problem)


def test_utf8_byte_order_mark_is_accepted(tmp_path):
    # red team F13: "host:1: bad syntax" (cpp, and editors that write a BOM, accept it)
    path = tmp_path / "host"
    path.write_bytes(b"\xef\xbb\xbfxen.a 1\n#if 0 && (1/0)\nxen.b 2\n#elif 1 ? 1 : 0\nxen.c \xc3\xa9\n#endif\n")
    p = read_source_profile(str(path))
    assert p.plain()["xen"] == {"a": "1", "c": "\u00e9"}
    assert p.get("xen", "a").first_location == (str(path), 1)


def test_harmless_directives(tmp_path):
    p = read(tmp_path, '#pragma once\n# 12 "x.c"\n#\n#warning careful\n#line 4\nxen.a 1\n')
    assert p.value("xen", "a") == "1"


# ------------------------------------------------------------------ comments and continuation


def test_comments_keep_line_numbers(tmp_path):
    p = read(
        tmp_path,
        """\
        /* one-line comment */
        xen.a 1 /* inline */ 2
        /* a comment
           over three
           lines */
        xen.b after
        xen.c x /* starts here
        and ends here */ y
        xen.d z
        !xen.url mSET(http://host/path//x) /* // is not a comment */
        xen.str "a /* not a comment */ b"
        /* a leading
           comment */ xen.lead 1
        """,
    )
    f = str(tmp_path / "host")
    assert p.value("xen", "a") == "1 2"
    assert p.get("xen", "b").derivation == f"{f}:6"
    assert p.value("xen", "c") == "x y"
    assert p.get("xen", "c").derivation == f"{f}:7"
    assert p.get("xen", "d").derivation == f"{f}:9"
    assert p.value("xen", "url") == "http://host/path//x"
    assert p.value("xen", "str") == '"a /* not a comment */ b"'
    assert p.get("xen", "lead").derivation == f"{f}:13"


def test_continuation(tmp_path):
    p = read(
        tmp_path,
        """\
        !xen.virtualmachines mADD(node1 node2 \\
                                  node3 \\
                                  node4)
        xen.after 1
        #define LONG a \\
            b
        xen.long LONG
        """,
    )
    f = str(tmp_path / "host")
    assert p.value("xen", "virtualmachines") == "node1 node2 node3 node4"
    assert p.get("xen", "virtualmachines").derivation == f"{f}:1"
    assert p.get("xen", "after").derivation == f"{f}:4"
    assert p.value("xen", "long") == "a b"


def test_crlf_line_endings(tmp_path):
    path = tmp_path / "host"
    path.write_bytes(b"xen.a 1\r\n!xen.b mADD(x \\\r\n y)\r\nxen.c 3\r\n")
    p = read_source_profile(str(path))
    assert plain(p)["xen"] == {"a": "1", "b": "x y", "c": "3"}
    assert p.get("xen", "c").derivation.endswith(":4")


def test_latin1_file(tmp_path):
    path = tmp_path / "host"
    path.write_bytes("inv.owner J\xf6rg\n".encode("latin-1"))
    assert read_source_profile(str(path)).value("inv", "owner") == "J\xf6rg"


# ------------------------------------------------------------------ contexts


def test_contexts_without_client_contexts(tmp_path):
    p = read(
        tmp_path,
        """\
        xen.a base
        xen.a[install] install-only
        xen.b base
        xen.b[!install] not-installing
        xen.c[os = sl7] sl7
        xen.d[os != sl7] other
        !xen.e[install] mADD(x)
        !xen.f mADD(a)
        !xen.f[!install] mADD(b)
        !xen.f mADD(c)
        xen.g[install | !install] either
        xen.h[install & !install] never
        xen.i[] empty-context
        """,
    )
    assert p.value("xen", "a") == "base"
    assert p.get("xen", "a").context is None
    assert p.value("xen", "b") == "not-installing"
    assert p.get("xen", "b").context == "!install"
    assert p.get("xen", "c") is None
    assert p.value("xen", "d") == "other"
    assert p.get("xen", "e") is None
    assert p.value("xen", "f") == "a b"  # context variant starts from the value at that point
    assert p.value("xen", "g") == "either"
    assert p.get("xen", "h") is None
    assert p.value("xen", "i") == "empty-context"


def test_context_conflict_and_bad_context(tmp_path):
    err = expect_error(tmp_path, "xen.a[!x] one\nxen.a[!y] two\n", 2, "xen.a", "conflicting values")
    assert "one" in err.problem and "two" in err.problem
    expect_error(tmp_path, "xen.a 1\nxen.a[x = ] v\n", 2, "xen.a", "context")
    expect_error(tmp_path, "xen.a[(x] v\n", 1, "xen.a", "ends too early")
    expect_error(tmp_path, "xen.a[(x y] v\n", 1, "xen.a", "missing )")
    expect_error(tmp_path, "xen.a[x $ y] v\n", 1, "xen.a", "unexpected")
    # an inactive statement is still checked
    expect_error(tmp_path, "!xen.a[install] mFOO(x)\n", 1, "xen.a", "unknown mutation macro mFOO")


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    "text,line,resource,problem",
    [
        ("xen.a 1\n!xen.b mFOO(x)\n", 2, "xen.b", "unknown mutation macro mFOO"),
        ("just words here\n", 1, None, "bad syntax"),
        ("\n\n!xen\n", 3, None, "bad syntax"),
        ("1xen.a value\n", 1, "1xen.a", "invalid component name"),
        ("xen.a-b value\n", 1, "xen.a-b", "invalid resource name"),
        ("xen.a.b value\n", 1, "xen.a.b", "invalid resource name"),
        ("!xen.a\n", 1, "xen.a", "mutation without a macro"),
        ("!xen.a value\n", 1, "xen.a", "expected a mutation macro call"),
        ("!xen.list mADD(a-b)\n", 1, "xen.list", "invalid tag 'a-b'"),
        ('!xen.list mREMOVEQ("a,b")\n', 1, "xen.list", "invalid tag 'a,b'"),
        ("xen.list 0,1\n!xen.list mADD(x)\n", 2, "xen.list", "not a valid tag list"),
        ("xen.l a b\n!xen.l mREPLACE(c, d)\n", 2, "xen.l", "not present"),
        ("!xen.l mREPLACE(c, d)\n", 1, "xen.l", "value is empty"),
        ("!xen.a mSET(a, b)\n", 1, "xen.a", "mSET takes 1 argument, got 2; use mSETQ"),
        ("!xen.a mSUBST(a)\n", 1, "xen.a", "mSUBST takes 2 arguments, got 1"),
        ("!xen.a mSET(a\n", 1, "xen.a", "missing )"),
        ("!xen.a mSET((a)\n", 1, "xen.a", "missing )"),
        ('!xen.a mSETQ("abc)\n', 1, "xen.a", "unterminated string"),
        ("!xen.a mSETQ(abc)\n", 1, "xen.a", "double-quoted string"),
        ('!xen.a mSETQ("a" "b")\n', 1, "xen.a", "double-quoted string"),
        ("!xen.a mSET(a) mADD(b)\n", 1, "xen.a", "unexpected text after mSET"),
        ("xen.a 1\n\n/* never\nclosed\n", 3, None, "unterminated /* comment"),
        (
            "#define A0 xx\n" + "".join(f"#define A{i} A{i - 1} A{i - 1}\n" for i in range(1, 21)) + "xen.a A20\n",
            22,
            "xen.a",
            "macro expansion too large",
        ),
    ],
)
def test_statement_errors(tmp_path, text, line, resource, problem):
    expect_error(tmp_path, text, line, resource, problem)


def test_missing_profile_file(tmp_path):
    with pytest.raises(LcfgError) as info:
        read_source_profile(str(tmp_path / "absent"))
    assert info.value.file == str(tmp_path / "absent")
    assert "cannot read" in info.value.problem


def test_error_in_header_names_header(site):
    root = site({"inc/bad.h": "xen.ok 1\n!xen.bad mNOPE(1)\n", "host": "#include <bad.h>\n"})
    with pytest.raises(LcfgError) as info:
        read_source_profile(str(root / "host"), include_path=[str(root / "inc")])
    assert (info.value.file, info.value.line, info.value.resource) == (str(root / "inc/bad.h"), 2, "xen.bad")


def test_invalid_defines_argument(tmp_path):
    with pytest.raises(LcfgError):
        read(tmp_path, "xen.a 1\n", defines={"not valid": "x"})
