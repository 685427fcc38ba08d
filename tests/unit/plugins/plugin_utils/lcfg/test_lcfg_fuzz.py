"""Property tests: arbitrary input gives a Profile or an LcfgError, never anything else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.profile import Profile
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.source import read_source_profile
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.xml import read_xml_profile

SETTINGS = settings(max_examples=200, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# fragments that steer random text towards the interesting corners of the grammar
FRAGMENTS = st.sampled_from(
    [
        "#include <x.h>",
        '#include "y.h"',
        "#define A B",
        "#define B A",
        "#undef A",
        "#ifdef A",
        "#ifndef A",
        "#if defined(A) && 1",
        "#elif 0",
        "#else",
        "#endif",
        "#error x",
        "#pragma x",
        "/*",
        "*/",
        '"',
        "\\",
        "(",
        ")",
        ",",
        "!",
        "[",
        "]",
        "xen.r",
        "!xen.r",
        "xen.r[ctx]",
        "!xen.r[!ctx]",
        " mSET(",
        " mADD(",
        " mREMOVE(",
        " mREPLACE(",
        " mSUBST(",
        " mCONCATQ(",
        " mSETQ(",
        " mFOO(",
        "a b",
        "0,1",
        "\n",
        " ",
        "\t",
        "\r\n",
        "A",
        "x = y",
        "|",
        "&",
        "#if ",
        "9" * 25,
        "9223372036854775807",
        " / ",
        " % ",
        " * ",
        " - ",
        "0",
        " mCONCAT(",
    ]
)
SOURCE_TEXT = st.one_of(
    st.text(max_size=300),
    st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=60).map("".join),
)


def _not_a_reader_bug(exc: LcfgError) -> None:
    """The reader converts unexpected exceptions into LcfgError (``from`` the original):
    the fuzz tests still fail on them."""
    assert exc.__cause__ is None or isinstance(exc.__cause__, LcfgError), repr(exc.__cause__)


def _check(result):
    assert isinstance(result, Profile)
    for comp, items in result.resources.items():
        assert isinstance(comp, str)
        for name, res in items.items():
            assert isinstance(name, str) and isinstance(res.value, str)


@SETTINGS
@given(text=SOURCE_TEXT)
def test_source_reader_only_raises_lcfg_error(tmp_path_factory, text):
    inc = tmp_path_factory.getbasetemp() / "fuzzinc"
    inc.mkdir(exist_ok=True)
    (inc / "x.h").write_text("#ifndef XH\n#define XH\n!xen.h mADD(x)\n#endif\n")
    (inc / "y.h").write_text("#include <y.h>\n")  # a cycle when reached
    try:
        _check(read_source_profile("/fuzz/host", include_path=[str(inc)], text=text))
    except LcfgError as exc:
        assert exc.file is not None
        assert str(exc)
        _not_a_reader_bug(exc)


XML_FRAGMENTS = st.sampled_from(
    [
        "<profile>",
        "</profile>",
        "<lcfg>",
        "</lcfg>",
        "<components>",
        "</components>",
        "<xen>",
        "</xen>",
        '<l cfg:template="a_$ b_$_$">',
        "</l>",
        '<l_RECORD cfg:name="_0">',
        '<l_RECORD cfg:name="t">',
        "</l_RECORD>",
        "<a>",
        "</a>",
        "<b/>",
        '<c cfg:type="boolean">',
        "</c>",
        '<d cfg:context="x | !y">',
        "</d>",
        "yes",
        "text",
        "&amp;",
        "&x;",
        "<!-- c -->",
    ]
)
XML_PREFIX = b'<?xml version="1.0"?>'
NS = ' xmlns:cfg="http://www.lcfg.org/namespace/cfg-1.0"'
XML_DATA = st.one_of(
    st.binary(max_size=300),
    st.lists(st.one_of(XML_FRAGMENTS, st.text(max_size=5)), max_size=40).map(
        lambda parts: (
            XML_PREFIX
            + f"<profile{NS}><lcfg><components>".encode()
            + "".join(parts).encode("utf-8", "surrogatepass")
            + b"</components></lcfg></profile>"
        )
    ),
)


@SETTINGS
@given(data=XML_DATA)
def test_xml_reader_only_raises_lcfg_error(data):
    try:
        _check(read_xml_profile("/fuzz/h.xml", data=data))
    except LcfgError as exc:
        assert exc.file == "/fuzz/h.xml"
        _not_a_reader_bug(exc)
