"""Read every example profile of the example corpus (tests/fixtures/profiles) and check the raw resources."""

from __future__ import annotations

import os

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.loader import load_profiles
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.source import read_source_profile
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.xml import read_xml_profile
from support import PROFILES as CORPUS

INCLUDE = [str(CORPUS / "include")]
HEADER = str(CORPUS / "include/lcfg/options/xen-host.h")


def src(rel: str):
    return read_source_profile(str(CORPUS / rel), include_path=INCLUDE)


SINGLE_GUEST = {
    "virtualmachines": "profiledev",
    "name_profiledev": "profiledev",
    "uuid_profiledev": "bbdda922-8ee3-4ff8-874e-7c4e712dc4c7",
    "type_profiledev": "hvm",
    "maxmem_profiledev": "512",
    "memory_profiledev": "256",
    "vcpus_profiledev": "1",
    "disks_profiledev": "root",
    "vifs_profiledev": "vif1",
    "mac_profiledev_vif1": "00:15:17:96:40:03",
    "template_profiledev": "/guests/lcfg_temp.img",
    "profileurl_profiledev": "http://lcfg.ucs.ed.ac.uk/profiles/epcc.ed.ac.uk/",
    "partition_profiledev": "5",
}


def test_xen_single():
    p = src("source/xen-single")
    xen = p.plain()["xen"]
    assert p.name == "xen-single"
    assert p.value("profile", "components") == "xen"
    assert xen == {
        **SINGLE_GUEST,
        "xendconfbridgenet": "on",
        "xendconfnatnet": "off",
        "diskname_profiledev_root": "profiledev",
        "disktype_profiledev_root": "image",
        "disksize_profiledev_root": "12",
        "diskpath_profiledev_root": "/guests",
    }
    # the header's statements carry the header's derivation
    assert p.get("xen", "xendconfbridgenet").derivation == f"{HEADER}:5"
    assert p.get("xen", "virtualmachines").derivation == f"{CORPUS / 'source/xen-single'}:4"


def test_xen_single_seed_variant():
    xen = src("variants/xen-single-seed").plain()["xen"]
    assert xen == {
        **SINGLE_GUEST,
        "xendconfbridgenet": "on",
        "xendconfnatnet": "off",
        "diskname_profiledev": "profiledev",
        "disktype_profiledev": "image",
        "disksize_profiledev": "12",
        "diskpath_profiledev": "/guests",
    }


def test_xen_cluster():
    p = src("source/xen-cluster")
    xen = p.plain()["xen"]
    assert xen["virtualmachines"] == " ".join(f"node{i}" for i in range(1, 9))
    assert xen["xendconfbridgenet"] == "off" and xen["xendconfnatnet"] == "on"
    for i in range(1, 9):
        assert xen[f"name_node{i}"] == f"node{i}"
        assert xen[f"type_node{i}"] == "paravm"
        assert xen[f"uuid_node{i}"] == f"26d1876a-85fc-49a4-9a5b-929570e18b0{i}"
        assert xen[f"memory_node{i}"] == xen[f"maxmem_node{i}"] == "1930"
        assert xen[f"vcpus_node{i}"] == "4"
        assert xen[f"cpus_node{i}"] == ("0,1,2,3" if i <= 4 else "4,5,6,7")
        assert xen[f"disks_node{i}"] == "root"
        assert xen[f"diskpath_node{i}_root"] == "/data/guests"
        assert xen[f"disksize_node{i}_root"] == "20"
        assert xen[f"vifs_node{i}"] == "vif1"
        assert xen[f"nettype_node{i}_vif1"] == "nat"
        assert xen[f"ip_node{i}_vif1"] == f"10.0.0.{i}"
        assert xen[f"boot_node{i}"] == "no"
    # mSET (off) in the profile comes after the header's mSET(on): two derivations
    assert p.get("xen", "xendconfbridgenet").derivation == (f"{HEADER}:5 {CORPUS / 'source/xen-cluster'}:4")


def test_xen_groups():
    xen = src("source/xen-groups").plain()["xen"]
    assert xen["virtualmachines"] == " ".join(f"gnode{i}" for i in range(1, 9))
    assert xen["virtualgroup"] == "cluster1 cluster2 cluster3"
    assert xen["members_cluster1"] == "gnode1 gnode2 gnode3"
    assert xen["members_cluster2"] == "gnode4 gnode5"
    assert xen["members_cluster3"] == "gnode6 gnode7 gnode8"
    assert (xen["groupmemory_cluster1"], xen["groupmaxmem_cluster1"]) == ("1024", "2048")
    assert (xen["groupcpus_cluster1"], xen["groupvcpus_cluster1"]) == ("3", "4")
    assert xen["groupbridge_cluster1"] == "xenbr0"
    assert (xen["groupcpus_cluster2"], xen["groupvcpus_cluster2"]) == ("2", "2")
    assert xen["groupbridge_cluster2"] == "xenbr1"
    assert xen["groupcpus_cluster3"] == "2"
    assert (xen["groupnettype_cluster3"], xen["groupscript_cluster3"]) == ("nat", "vif-nat")
    assert xen["mac_gnode5_vif1"] == "00:16:3e:00:01:05"
    assert "name_gnode1" not in xen  # names default to tags (the model's job)


def test_xen_networks():
    xen = src("source/xen-networks").plain()["xen"]
    assert xen["bridgeinterfaces"] == "eth0 eth1 eth2"
    for i in range(3):
        assert xen[f"bridgenetdev_eth{i}"] == f"eth{i}"
        assert xen[f"bridgeif_eth{i}"] == f"xenbr{i}"
        assert xen[f"bridgevifnum_eth{i}"] == str(i)
    assert xen["xendconfcustombridge"] == "my-network-bridge"
    assert xen["xendconfbridgenet"] == "on" and xen["xendconfnatnet"] == "on"
    assert "virtualmachines" not in xen


def test_xml_matches_source_single():
    x = read_xml_profile(str(CORPUS / "xml/xen-single.xml"))
    s = src("source/xen-single")
    assert x.name == "xen-single"
    xml_xen, src_xen = x.plain()["xen"], s.plain()["xen"]
    # the XML's empty <xendconfnatnet/> is unset; booleans are canonical in XML ("on" -> "yes")
    assert "xendconfnatnet" not in xml_xen and src_xen.pop("xendconfnatnet") == "off"
    assert xml_xen.pop("xendconfbridgenet") == "yes" and src_xen.pop("xendconfbridgenet") == "on"
    assert xml_xen == src_xen
    assert x.get("xen", "boot_profiledev") is None  # <boot cfg:type="boolean"/>
    assert x.get("xen", "name_profiledev").derivation == "/var/lcfg/conf/server/source/xen-single:5"


def test_whole_corpus_through_the_loader():
    results = load_profiles(["source", "variants", "xml"], str(CORPUS), include_path=["include"])
    assert [os.path.relpath(r.source, CORPUS) for r in results] == [
        "source/xen-cluster",
        "source/xen-groups",
        "source/xen-networks",
        "source/xen-single",
        "variants/xen-single-seed",
        "xml/xen-single.xml",
    ]
    assert [r.error for r in results] == [None] * 6
    guests = sum(len(r.profile.value("xen", "virtualmachines", "").split()) for r in results[:4])
    assert guests == 17  # "All of source/ loads together as one site (17 guests)"
