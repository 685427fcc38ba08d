"""Hostile profiles (issue 9 §5): each attack is refused with an error naming file:line.

Every test reproduces one attack through the reader or loader and checks three things: the
error names the file (and line), it carries nothing of a file outside the site, and the
other profiles still load.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest

from ansible_collections.lcfg.xen.plugins.module_utils.common import validate as _validate
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import cpp
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import mutations as _mutations
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import source as _source
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import xml as _xml
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError, excerpt
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.loader import fetch_url, is_url, load_profiles
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.profile import Profile, Resource
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.source import read_source_profile
from ansible_collections.lcfg.xen.plugins.plugin_utils.model import build_site
from http_serving import PROFILE_XML, opener, serving
from support import trickle_server

SECRET = "root:$6$lcfgt-inv-SECRET-HASH:19000:0:99999:7:::"
GOOD = "!profile.components mADD(xen)\n!xen.virtualmachines mADD(goodvm)\n"


@pytest.fixture
def site(tmp_path):
    """tmp/secret/shadow outside the site; tmp/site/{profiles,include}; a good profile."""
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "shadow").write_text(SECRET + "\n")
    for d in ("site/profiles", "site/include"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "site/profiles/good").write_text(GOOD)
    return tmp_path


def load(site, name: str, text: str) -> dict:
    """Write profile ``name`` and load the site directory; {host name: LoadedProfile}."""
    (site / "site/profiles" / name).write_text(text)
    results = load_profiles(["profiles"], str(site / "site"), include_path=["include"])
    return {os.path.basename(r.source): r for r in results}


def refused(results: dict, name: str, line: int | None, problem: str) -> LcfgError:
    err = results[name].error
    assert err is not None, f"{name} was accepted"
    assert (os.path.basename(err.file or ""), err.line) == (name, line), str(err)
    assert problem in err.problem, str(err)
    assert "lcfgt-inv-SECRET" not in str(err)
    assert results["good"].error is None and results["good"].profile is not None
    return err


# ------------------------------------------------------------------ #include confinement


@pytest.mark.parametrize("spec", ['"../../secret/shadow"', "<../../secret/shadow>", '"{secret}"', "<{secret}>"])
def test_include_outside_the_site_is_refused(site, spec):
    spec = spec.format(secret=site / "secret" / "shadow")
    results = load(site, "evil", f"!profile.components mADD(xen)\n#include {spec}\n")
    refused(results, "evil", 2, "outside the include path and the sources' directories")


@pytest.mark.parametrize("spec", ['"{secret}"', "<{secret}>", '"../../secret/{name}"', "<dir/{name}>"])
def test_include_does_not_tell_whether_a_file_outside_exists(site, spec):
    # red team F11: /etc/shadow was "outside the include path", /etc/nonexistent "not found"
    os.symlink(site / "secret", site / "site/include/dir")
    problems = set()
    for name in ("shadow", "no-such-file"):
        text = spec.format(secret=site / "secret" / name, name=name)
        err = refused(load(site, "evil", f"#include {text}\n"), "evil", 1, "outside the include path")
        problems.add(err.problem.replace(name, "NAME"))
    assert len(problems) == 1, problems


def test_include_through_a_symlink_out_of_the_include_path_is_refused(site):
    os.symlink(site / "secret" / "shadow", site / "site/include/innocent.h")
    os.symlink(site / "secret", site / "site/include/dir")
    results = load(site, "evil", "#include <innocent.h>\n")
    refused(results, "evil", 1, "symlinks resolved")
    results = load(site, "evil", "#include <dir/shadow>\n")
    refused(results, "evil", 1, "refused")


def test_include_is_opened_without_following_a_link_swapped_in_after_the_check(site, monkeypatch):
    # the check saw a regular file; by the time it is opened it is a link to the secret
    os.symlink(site / "secret" / "shadow", site / "site/include/swapped.h")
    monkeypatch.setattr(cpp.os.path, "realpath", os.path.abspath)
    results = load(site, "evil", "#include <swapped.h>\n")
    refused(results, "evil", 1, "cannot read included file")


def test_include_inside_the_include_path_and_the_sources_directory_still_works(site):
    (site / "site/include/site.h").write_text("!xen.memory_goodvm mSET(256)\n")
    (site / "site/profiles/local.h").write_text("!xen.vcpus_goodvm mSET(2)\n")
    os.symlink(site / "site/include/site.h", site / "site/include/alias.h")  # inside: fine
    results = load(site, "ok2", '#include <alias.h>\n#include "local.h"\n' + GOOD)
    assert results["ok2"].error is None
    assert results["ok2"].profile.value("xen", "memory_goodvm") == "256"
    assert results["ok2"].profile.value("xen", "vcpus_goodvm") == "2"


def test_profile_symlinked_out_of_a_source_directory_is_refused(site):
    os.symlink(site / "secret" / "shadow", site / "site/profiles/evil")
    results = {os.path.basename(r.source): r for r in load_profiles(["profiles"], str(site / "site"))}
    err = results["evil"].error
    assert err is not None and "outside the source directory" in err.problem
    assert "lcfgt-inv-SECRET" not in str(err)
    assert results["good"].error is None


def test_errors_quote_a_bounded_escaped_excerpt(site):
    long_line = "\x1b[2J" + "A" * 5000
    results = load(site, "evil", f"#if {long_line}\n#endif\n")
    err = refused(results, "evil", 1, "bad #if expression")
    assert len(str(err)) < 400 and "AAAA" * 20 not in str(err)
    assert "\x1b" not in str(err) and "\\x1b" in str(err)
    assert excerpt("x" * 100) == repr("x" * 40) + "... (100 characters)"


# ------------------------------------------------------------------ budgets


def test_repeated_mconcat_of_a_macro_stops_at_the_value_limit(site):
    # the attack: a 9 KB profile built a 100 MB value
    text = "#define A " + "x" * 30000 + "\n" + "!xen.x mCONCAT(A)\n" * 400
    start = time.monotonic()
    results = load(site, "evil", text)
    refused(results, "evil", 4, f"longer than the limit of {_source.MAX_VALUE_LENGTH}")
    assert time.monotonic() - start < 5


def test_macro_expansion_has_a_profile_budget(site):
    # each value below the limit, many of them: the profile-wide expansion budget stops it
    text = "#define A " + "x" * 60000 + "\n" + "".join(f"!xen.r{i} mSET(A)\n" for i in range(400))
    results = load(site, "evil", text)
    refused(results, "evil", 2 + cpp.MAX_PROFILE_EXPANSION // 60000, "expansion over the profile's budget")


def test_if_expansions_count_against_the_profile_budget(site):
    text = "#define A " + "1 + " * 50000 + "1\n" + "#if A\n#endif\n" * 100
    results = load(site, "evil", text)
    refused(results, "evil", 2 + 2 * (cpp.MAX_PROFILE_EXPANSION // 200001), "profile's budget")


def test_values_built_budget_stops_quadratic_growth(site, monkeypatch):
    monkeypatch.setattr(_source, "MAX_VALUES_BUILT", 10000)
    results = load(site, "evil", "!xen.x mCONCAT(abcdefghij)\n" * 100)
    refused(results, "evil", 45, "values built by this profile are over the budget")


def test_many_defines_between_statements_stay_linear(tmp_path):
    # the attack: a regex of every macro name, rebuilt after each #define (4,000 pairs: 83 s)
    path = tmp_path / "host"
    path.write_text("".join(f"#define MACRO{i} {i}\nx.y MACRO{i}\n" for i in range(20000)))
    start = time.monotonic()
    assert read_source_profile(str(path)).value("x", "y") == "19999"
    assert time.monotonic() - start < 5


def test_long_derivations_keep_first_and_last_location(tmp_path):
    path = tmp_path / "host"
    path.write_text("!xen.x mADD(a)\n" * 2000)
    res = read_source_profile(str(path)).get("xen", "x")
    assert len(res.derivation) < _source.MAX_DERIVATION + 200
    assert res.derivation.startswith(f"{path}:1 ...") and res.first_location == (str(path), 2000)


@pytest.mark.parametrize(
    "expr, problem",
    [
        ("1" + "0" * 400 + " / 3 > 1", "integer constant too large"),
        ("4000000000 * 4000000000 * 4000000000 > 1", "integer overflow"),
        ("9223372036854775807 + 1", "integer overflow"),
    ],
)
def test_if_arithmetic_is_64_bit_and_never_raises_overflow(site, expr, problem):
    results = load(site, "evil", f"#if {expr}\n#endif\n")
    refused(results, "evil", 1, problem)


def test_if_division_truncates_toward_zero_like_c(tmp_path):
    text = "#if -7 / 2 == -3 && -7 % 2 == -1 && 7 / -2 == -3 && 9223372036854775807 / 1 > 0\nx.ok yes\n#endif\n"
    path = tmp_path / "host"
    path.write_text(text)
    assert read_source_profile(str(path)).value("x", "ok") == "yes"


def test_profile_line_include_and_size_budgets(site, monkeypatch):
    (site / "site/include/h.h").write_text("x.y 1\n" * 50)
    monkeypatch.setattr(cpp, "MAX_PROFILE_LINES", 120)
    results = load(site, "evil", "#include <h.h>\n#include <h.h>\n#include <h.h>\n")
    refused(results, "evil", 3, "over 120 lines")
    monkeypatch.setattr(cpp, "MAX_PROFILE_LINES", 10**6)
    monkeypatch.setattr(cpp, "MAX_INCLUDES", 2)
    results = load(site, "evil", "#include <h.h>\n" * 3)
    refused(results, "evil", 3, "more than 2 #include lines")
    monkeypatch.setattr(cpp, "MAX_INCLUDES", 10**6)
    monkeypatch.setattr(cpp, "MAX_PROFILE_INPUT", 500)
    results = load(site, "evil", "#include <h.h>\n" * 3)
    refused(results, "evil", 2, "over 500 bytes")
    monkeypatch.setattr(cpp, "MAX_FILE_SIZE", 100)
    results = load(site, "evil", "x.y " + "z" * 200 + "\n")
    refused(results, "evil", None, "file larger than 100 bytes")


def test_cpuset_cpu_numbers_are_bounded():
    # the attack: cpus 0-9999999 took 1.2 GB when a module expanded it
    for value in ("0-9999999", "1" * 5000, "0-16384", "^99999"):
        with pytest.raises(ValueError, match="out of range"):
            _validate.parse_cpuset(value)
    assert len(_validate.cpuset_members("0-16383")) == 16384


def test_cpus_0_9999999_in_a_profile_is_an_error_naming_the_line(site):
    results = load(site, "evil", GOOD.replace("goodvm", "vm") + "!xen.cpus_vm mSET(0-9999999)\n")
    profile = results["evil"].profile
    site_model = build_site([profile, results["good"].profile])
    [err] = site_model.rejected["evil"]
    assert (os.path.basename(err.file), err.line) == ("evil", 3) and "out of range" in err.problem
    assert "good" in site_model.hosts


# ------------------------------------------------------------------ every exception -> file:line


def test_unexpected_exception_in_the_reader_names_file_line_and_type(site, monkeypatch):
    def boom(old, arg):
        raise KeyError("internal")

    monkeypatch.setitem(_mutations.MUTATIONS, "mBOOM", _mutations.Mutation("mBOOM", 1, boom, False))
    results = load(site, "evil", "x.a 1\n!x.b mBOOM(1)\n")
    err = refused(results, "evil", 2, "KeyError")
    assert isinstance(err.__cause__, KeyError)  # the type is kept, not hidden


def test_unexpected_exception_in_the_loader_is_one_profiles_error(site, monkeypatch):
    def boom(*args, **kwargs):
        raise MemoryError("exhausted")

    monkeypatch.setattr(_xml, "read_xml_profile", boom)  # the loader reads XML with it
    (site / "site/profiles/evil.xml").write_text("<profile/>")
    results = {os.path.basename(r.source): r for r in load_profiles(["profiles"], str(site / "site"))}
    assert "MemoryError" in results["evil.xml"].error.problem
    assert results["good"].error is None


# ------------------------------------------------------------------ host and group names


def make(name: str, xen: dict[str, str] | None = None) -> Profile:
    path = f"/site/{name}"
    prof = Profile(name=name, path=path)
    prof.resources["profile"] = {"components": Resource("xen", f"{path}:1")}
    prof.resources["xen"] = {
        res: Resource(value, f"{path}:{n}") for n, (res, value) in enumerate((xen or {}).items(), start=2)
    }
    return prof


@pytest.mark.parametrize(
    "host, problem",
    [
        ("ungrouped", "is a group name"),
        ("all", "is a group name"),
        ("xen_guests", "is a group name"),
        ("bad name", "not a valid inventory name"),
        ("x:1", "not a valid inventory name"),
    ],
)
def test_reserved_or_invalid_host_names_reject_only_that_profile(host, problem):
    good = make("xen1", {"virtualmachines": "vm1", "virtualgroup": "cl", "members_cl": "vm1"})
    site = build_site([good, make(host)])
    [err] = site.rejected[host]
    assert problem in err.problem and err.file == f"/site/{host}"
    assert list(site.hosts) == ["xen1"]


@pytest.mark.parametrize("guest", ["xen_hypervisors", "xen_guests", "all", "ungrouped"])
def test_guest_named_like_a_group_is_an_error_at_its_line(guest):
    good = make("xen1", {"virtualmachines": "vm1", "virtualgroup": "cl", "members_cl": "vm1"})
    evil = make("xen2", {"virtualmachines": guest})
    site = build_site([good, evil])
    [err] = site.rejected["xen2"]
    assert (err.file, err.line) == ("/site/xen2", 2) and "is a group name" in err.problem
    assert list(site.hosts) == ["xen1"]


@pytest.mark.parametrize("other", [make("cl"), make("xen2", {"virtualmachines": "cl"})], ids=["host", "guest"])
def test_group_named_like_a_host_is_the_groups_profiles_error(other):
    # a profile cannot knock another host out by naming a virtual group after it
    evil = make("xen1", {"virtualmachines": "vm1", "virtualgroup": "cl", "members_cl": "vm1"})
    for order in ([evil, other], [other, evil]):
        site = build_site(order)
        [err] = site.rejected["xen1"]
        assert (err.file, err.line) == ("/site/xen1", 3)
        assert "is also a host name" in err.problem and other.path in err.problem
        assert list(site.hosts) == [other.name]


def test_group_name_starting_with_a_digit_is_an_error():
    site = build_site([make("xen1", {"virtualmachines": "vm1", "virtualgroup": "1cl", "members_1cl": "vm1"})])
    [err] = site.rejected["xen1"]
    assert (err.file, err.line) == ("/site/xen1", 3) and "starts with a digit" in err.problem


# ------------------------------------------------------------------ http(s)


@pytest.fixture(params=[False, True], ids=["slow-body", "slow-headers"])
def trickle_url(request):
    with trickle_server(b"<profile>" + b" " * 100 + b"</profile>", request.param) as base:
        yield f"{base}/p.xml"


def test_a_server_sending_a_byte_a_second_fails_within_the_deadline(trickle_url):
    start = time.monotonic()
    with pytest.raises(LcfgError, match="no complete answer within the timeout of 2 s") as info:
        fetch_url(trickle_url, timeout=2)
    assert time.monotonic() - start < 3
    assert info.value.file == trickle_url


def test_the_deadline_holds_with_ansibles_open_url(trickle_url):
    from ansible_collections.lcfg.xen.plugins.inventory.lcfg import make_opener

    opener = make_opener({}, True, None, None, None, False)
    start = time.monotonic()
    [r] = load_profiles([trickle_url], "/", timeout=2, opener=opener)
    assert r.profile is None and "no complete answer" in r.error.problem
    assert time.monotonic() - start < 3


def test_open_url_sends_the_configured_headers():
    seen = {}

    def echo(handler):
        seen.update(handler.headers)
        return 200, {}, PROFILE_XML % handler.headers.get("X-Lcfgt-Inv", "").encode()

    with serving(echo) as base:
        url = base.replace("http://", "HTTP://") + "/xenhost/XML/profile.xml"
        assert is_url(url)
        [r] = load_profiles([url], "/", timeout=5, opener=opener({"X-Lcfgt-Inv": "token"}))
    assert r.error is None and r.profile.value("xen", "a") == "token"
    assert seen["User-Agent"] == "lcfg.xen-inventory"


def test_connection_refused_is_an_error_naming_the_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}/x.xml"
    [r] = load_profiles([url], "/", timeout=2)
    assert r.profile is None and r.error.file == url and "cannot fetch" in r.error.problem


def test_open_url_redirects_only_to_http_checked_before_connecting():
    ftp = socket.socket()  # records whether the ftp:// target was contacted
    ftp.bind(("127.0.0.1", 0))
    ftp.listen(1)
    ftp.setblocking(False)
    targets = {
        "/file": "file:///etc/passwd",
        "/ftp": f"ftp://127.0.0.1:{ftp.getsockname()[1]}/x",
        "/rel": "/h/XML/profile.xml",
        "/loop": "/loop",
    }

    def redirect(handler):
        if handler.path == "/h/XML/profile.xml":
            return 200, {}, PROFILE_XML % b"ok"
        return 302, {"Location": targets[handler.path]}, b""

    with serving(redirect) as base:
        got = {path: load_profiles([base + path], "/", timeout=5, opener=opener())[0] for path in targets}
    for path in ("/file", "/ftp"):
        assert "redirect to a non-http(s) URL" in got[path].error.problem
        assert got[path].error.file == base + path
    assert got["/rel"].profile.value("xen", "a") == "ok"
    assert "more than 10 redirects" in got["/loop"].error.problem
    with pytest.raises(BlockingIOError):  # the ftp:// target was never contacted
        ftp.accept()
    ftp.close()
    assert serving.paths.count("/loop") == 11


def test_open_url_goes_through_the_environments_proxy(monkeypatch):
    url = "http://lcfgt-inv.invalid/xenhost/XML/profile.xml"
    with serving(lambda handler: (200, {}, PROFILE_XML % b"proxied")) as proxy:
        monkeypatch.setenv("http_proxy", proxy)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        [r] = load_profiles([url], "/", timeout=5, opener=opener(use_proxy=True))
        assert r.error is None and r.profile.value("xen", "a") == "proxied"
        assert serving.paths == [url]  # a proxy receives the absolute URL
        [r] = load_profiles([url], "/", timeout=5, opener=opener(use_proxy=False))
        assert r.profile is None and "cannot fetch" in r.error.problem
        assert serving.paths == [url]


def _self_signed(tmp_path, name: str, ip: bool) -> tuple[str, str]:
    key, cert = tmp_path / f"{name}.key", tmp_path / f"{name}.pem"
    extra = ["-addext", "subjectAltName=IP:127.0.0.1"] if ip else []
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            f"/CN={'127.0.0.1' if ip else name}",
            *extra,
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_open_url_client_certificate_and_ca_path(tmp_path):
    import ssl

    server_cert, server_key = _self_signed(tmp_path, "server", ip=True)
    client_cert, client_key = _self_signed(tmp_path, "lcfgt-inv-client", ip=False)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(server_cert, server_key)
    context.verify_mode = ssl.CERT_REQUIRED  # only our client certificate gets in
    context.load_verify_locations(client_cert)
    with serving(lambda handler: (200, {}, PROFILE_XML % b"mtls"), context) as base:
        url = f"{base}/xenhost/XML/profile.xml"
        [ok] = load_profiles(
            [url], "/", timeout=5, opener=opener(client_cert=client_cert, client_key=client_key, ca_path=server_cert)
        )
        [no_client] = load_profiles([url], "/", timeout=5, opener=opener(ca_path=server_cert))
        [no_ca] = load_profiles([url], "/", timeout=5, opener=opener(client_cert=client_cert, client_key=client_key))
    assert ok.error is None and ok.profile.value("xen", "a") == "mtls"
    assert no_client.profile is None and "cannot fetch" in no_client.error.problem
    assert no_ca.profile is None and "validate_certs" in no_ca.error.problem


def test_xml_profile_of_many_tiny_elements_is_bounded(tmp_path, monkeypatch):
    # the attack: a 60 MB XML profile of <a>1</a> took 3.4 GB and 15 s
    monkeypatch.setattr(_xml, "MAX_XML_ELEMENTS", 1000)
    path = tmp_path / "evil.xml"
    path.write_text("<profile><lcfg><components><xen>\n" + "<a>1</a>\n" * 1001 + "</xen></components></lcfg></profile>")
    with pytest.raises(LcfgError) as info:
        _xml.read_xml_profile(str(path))
    assert (info.value.file, info.value.line) == (str(path), 1002)
    assert "more than 1000 resource elements" in info.value.problem
    assert _xml.MAX_XML_SIZE <= 16 * 1024 * 1024


def _xml_profile(node: str, guest: str) -> str:
    return (
        f'<?xml version="1.0"?>\n<profile>\n<lcfg>\n<components>\n'
        f"<profile><node>{node}</node><components>xen</components></profile>\n"
        f"<xen><virtualmachines>{guest}</virtualmachines></xen>\n"
        "</components>\n</lcfg>\n</profile>\n"
    )


def test_xml_profile_node_cannot_take_another_hosts_name(site):
    # red team F4a: attacker.xml (sorted first) said profile.node xen9 and became host xen9
    # with its own guests; the real xen9.xml was left out
    (site / "site/profiles/attacker.xml").write_text(_xml_profile("xen9", "evilguest"))
    results = load(site, "xen9.xml", _xml_profile("xen9", "goodguest"))
    err = refused(results, "attacker.xml", 5, "profile.node 'xen9' does not match the host name 'attacker'")
    site_model = build_site([r.profile for r in results.values() if r.profile is not None])
    assert site_model.hosts["xen9"].path.endswith("/xen9.xml")
    assert list(site_model.hosts["xen9"].guests) == ["goodguest"]
    assert "evilguest" not in str(site_model.hosts) and err.resource == "profile.node"
