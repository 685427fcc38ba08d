"""XML profile reader (reference lcfg.md section 2)."""

from __future__ import annotations

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.xml import profile_name_from_path, read_xml_profile

NS11 = 'xmlns="http://www.lcfg.org/namespace/profile-1.1" xmlns:cfg="http://www.lcfg.org/namespace/cfg-1.0"'
NS10 = 'xmlns="http://www.lcfg.org/namespace/profile-1.0" xmlns:cfg="http://www.lcfg.org/namespace/cfg-1.0"'


def doc(components: str, ns: str = NS11, meta: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<profile {ns}>\n<lcfg>\n{meta}'
        f"<components>\n{components}\n</components>\n<packages/>\n</lcfg>\n</profile>\n"
    ).encode()


def read(components: str, path: str = "/site/host.xml", **kw) -> dict:
    return read_xml_profile(path, data=doc(components, **kw))


XEN = """
<profile><node>xenhost1</node><components>client profile xen</components></profile>
<xen>
  <virtualmachines cfg:template="name_$ type_$ cpus_$ disks_$" cfg:derivation="/src/xenhost1:10">
    <virtualmachines_RECORD cfg:name="node1">
      <name>node1</name>
      <type>hvm</type>
      <cpus>0,1,2,3</cpus>
      <disks cfg:template="diskname_$_$ disksize_$_$">
        <disks_RECORD cfg:name="root"><diskname>node1</diskname><disksize>20G</disksize></disks_RECORD>
        <disks_RECORD cfg:name="_0"><diskname>node1-0</diskname></disks_RECORD>
      </disks>
    </virtualmachines_RECORD>
    <virtualmachines_RECORD cfg:name="_2nd"><type>pv</type></virtualmachines_RECORD>
  </virtualmachines>
  <virtualgroup cfg:template="members_$">
    <virtualgroup_RECORD cfg:name="cluster1"><members>node1 node3</members></virtualgroup_RECORD>
  </virtualgroup>
</xen>
"""

EXPECTED_XEN = {
    "virtualmachines": "node1 2nd",
    "name_node1": "node1",
    "type_node1": "hvm",
    "cpus_node1": "0,1,2,3",
    "disks_node1": "root 0",
    "diskname_node1_root": "node1",
    "disksize_node1_root": "20G",
    "diskname_node1_0": "node1-0",
    "type_2nd": "pv",
    "virtualgroup": "cluster1",
    "members_cluster1": "node1 node3",
}


@pytest.mark.parametrize(
    "ns",
    [
        NS11,
        NS10,
        'xmlns:cfg="http://www.lcfg.org/namespace/cfg-1.0"',
        'xmlns="http://www.lcfg.org/namespace/profile-1.2" xmlns:cfg="urn:cfg"',
    ],
)
def test_nested_records_and_templates_any_namespace(ns):
    p = read(XEN, path="/site/xenhost1.xml", ns=ns)
    assert p.plain()["xen"] == EXPECTED_XEN
    assert p.value("profile", "node") == "xenhost1"
    assert p.name == "xenhost1"  # the file's, confirmed by profile.node


def test_derivations_kept_or_path_and_line():
    p = read(XEN, path="/site/xenhost1.xml")
    assert p.get("xen", "virtualmachines").derivation == "/src/xenhost1:10"
    deriv = p.get("xen", "type_node1").derivation
    file, line = p.get("xen", "type_node1").first_location
    assert file == "/site/xenhost1.xml" and line == 11 and deriv == "/site/xenhost1.xml:11"


def test_tag_unescaping():
    p = read("""
<xen><disks cfg:template="diskname_$">
  <disks_RECORD cfg:name="_0"><diskname>zero</diskname></disks_RECORD>
  <disks_RECORD cfg:name="_"><diskname>underscore</diskname></disks_RECORD>
  <disks_RECORD cfg:name="__x"><diskname>double</diskname></disks_RECORD>
</disks></xen>""")
    assert p.plain()["xen"] == {
        "disks": "0 _ _x",
        "diskname_0": "zero",
        "diskname__": "underscore",
        "diskname__x": "double",
    }


def test_template_right_most_dollar_is_innermost_and_extra_tags():
    p = read("""
<xen><a cfg:template="b_$">
  <a_RECORD cfg:name="t1"><b cfg:template="c_$_$ d_$">
     <b_RECORD cfg:name="t2"><c>deep</c><d>last-only</d></b_RECORD>
  </b></a_RECORD>
</a></xen>""")
    assert p.plain()["xen"] == {"a": "t1", "b_t1": "t2", "c_t1_t2": "deep", "d_t2": "last-only"}


def test_field_without_template_uses_conventional_name():
    p = read('<xen><vms cfg:template="name_$"><vms_RECORD cfg:name="a"><mem>1</mem></vms_RECORD></vms></xen>')
    assert p.value("xen", "mem_a") == "1"


def test_empty_elements_are_unset_and_whitespace_kept():
    p = read("""
<xen>
  <natnet cfg:type="boolean"/>
  <empty></empty>
  <emptylist cfg:template="x_$"></emptylist>
  <prettylist cfg:template="x_$">
  </prettylist>
  <space> </space>
</xen>""")
    xen = p.plain()["xen"]
    assert "natnet" not in xen and "empty" not in xen
    assert "emptylist" not in xen and "prettylist" not in xen
    assert xen["space"] == " "


def test_list_without_records_falls_back_to_text():
    p = read('<xen><lst cfg:template="">a   b\n c</lst><typed cfg:type="list">x y</typed></xen>')
    assert p.value("xen", "lst") == "a b c"
    assert p.value("xen", "typed") == "x y"


@pytest.mark.parametrize(
    "raw,canon",
    [("yes", "yes"), ("TRUE", "yes"), ("on", "yes"), ("1", "yes"), ("no", ""), ("False", ""), ("off", ""), ("0", "")],
)
def test_boolean_canonicalisation(raw, canon):
    p = read(f'<xen><flag cfg:type="%boolean">{raw}</flag></xen>')
    assert p.get("xen", "flag").value == canon


def test_integer_type_checked():
    assert read('<xen><n cfg:type="integer">-12</n></xen>').value("xen", "n") == "-12"
    with pytest.raises(LcfgError) as info:
        read('<xen>\n<n cfg:type="integer">012</n></xen>')
    assert (info.value.line, info.value.resource) == (6, "xen.n")


def test_contexts_inherit_and_merge():
    p = read("""
<xen>
  <a>base</a>
  <a cfg:context="install">install</a>
  <b cfg:context="!install">not-install</b>
  <b>base</b>
  <c>same</c>
  <c>same</c>
  <vms cfg:template="m_$" cfg:context="!install">
    <vms_RECORD cfg:name="v"><m cfg:context="install">never</m></vms_RECORD>
  </vms>
  <w cfg:template="m_$">
    <w_RECORD cfg:name="q" cfg:context="!x"><m>kept</m></w_RECORD>
  </w>
</xen>""")
    assert p.value("xen", "a") == "base"
    assert p.value("xen", "b") == "not-install"
    assert p.get("xen", "b").context == "!install"
    assert p.value("xen", "c") == "same"
    assert p.value("xen", "vms") == "v"
    assert p.get("xen", "m_v") is None  # (!install) & (install) is false
    assert p.get("xen", "m_q").context == "!x"


def test_equal_priority_conflict():
    with pytest.raises(LcfgError) as info:
        read("<xen>\n<a>one</a>\n<a>two</a>\n</xen>")
    err = info.value
    assert (err.file, err.line, err.resource) == ("/site/host.xml", 7, "xen.a")
    assert "conflicting values 'one'" in err.problem and "'two'" in err.problem


@pytest.mark.parametrize(
    "components,line,resource,problem",
    [
        ('<xen>\n<l cfg:template="x_$"><l_RECORD><x>1</x></l_RECORD></l></xen>', 6, "xen.l", "without cfg:name"),
        ('<xen>\n<l cfg:template="x_$"><l_RECORD cfg:name="a-b"/></l></xen>', 6, "xen.l", "invalid tag"),
        ('<xen>\n<l cfg:template="x_$$$$$$"/></xen>', 6, "xen.l", "1 to 5"),
        ('<xen>\n<l cfg:template="1x_$"/></xen>', 6, "xen.l", "invalid template"),
        (
            '<xen>\n<l cfg:template="x_$_$"><l_RECORD cfg:name="a"><x>1</x></l_RECORD></l></xen>',
            6,
            "xen.x",
            "insufficient tags",
        ),
        ('<xen>\n<b cfg:type="boolean">maybe</b></xen>', 6, "xen.b", "invalid boolean"),
        ('<xen>\n<a cfg:context="(x">v</a></xen>', 6, "xen.a", "context"),
        ("<_bad>\n<a>v</a></_bad>", 5, None, "invalid component name"),
    ],
)
def test_errors_name_line_and_resource(components, line, resource, problem):
    with pytest.raises(LcfgError) as info:
        read(components)
    err = info.value
    assert err.file == "/site/host.xml"
    assert err.line == line
    assert err.resource == resource
    assert problem in err.problem
    assert str(err).startswith(f"/site/host.xml:{line}: ")


@pytest.mark.parametrize(
    "data,problem",
    [
        (b"", "invalid XML"),
        (b"<profile><lcfg><components>", "invalid XML"),
        (b"<other/>", "root element is <other>"),
        (b"<profile/>", "no <lcfg>"),
        (b"<profile><lcfg/></profile>", "no <components>"),
        (b"\xff\xfe garbage", "invalid XML"),
    ],
)
def test_not_a_profile(data, problem):
    with pytest.raises(LcfgError) as info:
        read_xml_profile("/x/bad.xml", data=data)
    assert info.value.file == "/x/bad.xml"
    assert problem in info.value.problem


def test_entities_are_not_expanded_and_no_network(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET")
    data = (
        f'<?xml version="1.0"?><!DOCTYPE profile [<!ENTITY x SYSTEM "file://{secret}">'
        f'<!ENTITY y "internal">]><profile><lcfg><components><c>\n<r>a&x;b</r><s>&y;</s>'
        f"</c></components></lcfg></profile>"
    ).encode()
    # red team F13: the value was the literal text "a&x;b"; now an error at the element's line
    with pytest.raises(LcfgError) as info:
        read_xml_profile("/x/ent.xml", data=data)
    assert (info.value.file, info.value.line, info.value.resource) == ("/x/ent.xml", 2, "c.r")
    assert "entity reference '&x;' is not expanded" in info.value.problem
    assert "TOP-SECRET" not in str(info.value)
    # the predefined entities and character references are XML itself: expanded
    p = read("<c><r>a &amp; &lt;&#65;&#x42;</r></c>")
    assert p.value("c", "r") == "a & <AB"


def test_billion_laughs_is_harmless():
    ents = '<!ENTITY a0 "lol">' + "".join(
        f'<!ENTITY a{i} "&a{i - 1};&a{i - 1};&a{i - 1};&a{i - 1};&a{i - 1};&a{i - 1};">' for i in range(1, 12)
    )
    data = (
        f'<?xml version="1.0"?><!DOCTYPE profile [{ents}]><profile><lcfg><components>'
        f"<c><r>&a11;</r></c></components></lcfg></profile>"
    ).encode()
    try:
        p = read_xml_profile("/x/lol.xml", data=data)
    except LcfgError:
        return  # refusing is fine too
    assert len(p.value("c", "r")) < 100


def test_names_from_path_node_and_stem(tmp_path):
    assert profile_name_from_path("/srv/profiles/ed.ac.uk/xenhost1/XML/profile.xml") == "xenhost1"
    assert profile_name_from_path("https://s/profiles/d/h2/XML/profile.xml?x=1") == "h2"
    assert profile_name_from_path("/srv/h.xml") is None
    comps = "<xen><a>1</a></xen>"
    assert read(comps, path="/p/xenhost9/XML/profile.xml").name == "xenhost9"
    assert read(comps, path="/p/some-host.xml").name == "some-host"
    assert read(comps, path="/p/some-host.xml").name == "some-host"
    node = "<profile><node>fromnode</node></profile>"
    assert read(node, path="/p/fromnode/XML/profile.xml").name == "fromnode"
    with pytest.raises(LcfgError, match="does not match the host name 'h'"):
        read(node, path="/p/h/XML/profile.xml")
    # the file's path names the host; profile.node (the author's) may only agree with it
    with pytest.raises(LcfgError) as info:
        read(node, path="/p/file.xml")
    assert info.value.file == "/p/file.xml" and info.value.line == 5
    assert info.value.resource == "profile.node"
    assert "profile.node 'fromnode' does not match the host name 'file'" in info.value.problem
    assert read(node, path="/p/fromnode.xml").name == "fromnode"
    assert read(node, path="/p/fromnode.example.org.xml").name == "fromnode.example.org"
    assert read(node, path="https://s/p/fromnode.xml?x=/evil.xml").name == "fromnode"
    f = tmp_path / "onfile.xml"
    f.write_bytes(doc(comps))
    assert read_xml_profile(str(f)).name == "onfile"
    assert read_xml_profile(str(f), name="given").name == "given"


def test_missing_file():
    with pytest.raises(LcfgError) as info:
        read_xml_profile("/nonexistent/h.xml")
    assert info.value.file == "/nonexistent/h.xml" and "cannot read" in info.value.problem
