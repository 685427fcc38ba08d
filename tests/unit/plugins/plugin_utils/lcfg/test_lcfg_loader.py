"""Profile loader: files, directories, http(s) URLs, errors kept per profile."""

from __future__ import annotations

import http.server
import os
import ssl
import subprocess
import threading

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import loader as _loader
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.loader import is_profile_file, load_profiles

XML = (
    b'<?xml version="1.0"?><profile xmlns="http://www.lcfg.org/namespace/profile-1.1">'
    b"<lcfg><components><xen><a>%s</a></xen></components></lcfg></profile>"
)


@pytest.fixture
def tree(tmp_path):
    files = {
        "site/b-host": "#include <h.h>\nxen.who b\n",
        "site/a-host": "xen.who a\n",
        "site/sub/c-host": "xen.who c\n",
        "site/sub/broken": "!xen.who mNOPE(x)\n",
        "site/x.xml": None,
        "site/.hidden": "garbage\n",
        "site/.git/config": "garbage\n",
        "site/h.h": "garbage\n",
        "site/conf.yml": "garbage\n",
        "site/conf.yaml": "garbage\n",
        "site/a-host~": "garbage\n",
        "site/#a-host#": "garbage\n",
        "site/a-host.swp": "garbage\n",
        "site/a-host.bak": "garbage\n",
        "site/README.md": "garbage\n",
        "inc/h.h": "xen.header yes\n",
    }
    for rel, text in files.items():
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            p.write_bytes(XML % b"xml")
        else:
            p.write_text(text)
    return tmp_path


def test_directory_scan_order_skips_and_error_isolation(tree):
    results = load_profiles(["site"], str(tree), include_path=["inc"])
    rel = [os.path.relpath(r.source, tree) for r in results]
    assert rel == ["site/a-host", "site/b-host", "site/sub/broken", "site/sub/c-host", "site/x.xml"]
    by = {os.path.basename(r.source): r for r in results}
    assert by["a-host"].profile.value("xen", "who") == "a"
    assert by["a-host"].profile.name == "a-host"
    assert by["b-host"].profile.value("xen", "header") == "yes"  # include path relative to base_dir
    assert by["x.xml"].profile.value("xen", "a") == "xml"
    assert by["x.xml"].profile.name == "x"
    broken = by["broken"]
    assert broken.profile is None
    assert broken.error.file == str(tree / "site/sub/broken") and broken.error.line == 1
    assert broken.error.resource == "xen.who"
    assert by["c-host"].error is None


def test_explicit_files_missing_sources_and_dedup(tree):
    results = load_profiles(["site/a-host", str(tree / "site/a-host"), "site/x.xml", "nope", "site/sub"], str(tree))
    rel = [os.path.relpath(r.source, tree) for r in results]
    assert rel == ["nope", "site/a-host", "site/sub/broken", "site/sub/c-host", "site/x.xml"]
    assert results[0].profile is None and "no such file" in str(results[0].error)
    assert results[0].error.file == str(tree / "nope")


def test_explicit_header_like_file_is_still_read(tree):
    # only directory scans skip headers; an explicitly named file is a profile
    [r] = load_profiles(["inc/h.h"], str(tree))
    assert r.profile.value("xen", "header") == "yes"


def test_defines_reach_every_profile(tmp_path):
    (tmp_path / "h1").write_text("xen.v SITE\n")
    (tmp_path / "h2").write_text("#ifdef SITE\nxen.v set\n#endif\n")
    results = load_profiles([str(tmp_path)], "/", defines={"SITE": "ed"})
    assert [r.profile.value("xen", "v") for r in results] == ["ed", "set"]


def test_special_file_is_refused(tmp_path):
    os.mkfifo(tmp_path / "fifo")  # reading it would block
    [r] = load_profiles(["fifo"], str(tmp_path))
    assert r.profile is None and "not a regular file" in str(r.error)


def test_empty_source_entry():
    [r] = load_profiles([""], "/")
    assert r.profile is None and "empty" in str(r.error)


@pytest.mark.parametrize(
    "name,ok",
    [
        ("xenhost1", True),
        ("host.example.org", True),
        ("h.xml", True),
        (".h", False),
        ("a.h", False),
        ("a.def", False),
        ("x.yml", False),
        ("x.YAML", False),
        ("x~", False),
        ("#x#", False),
        ("x.swp", False),
        ("x.orig", False),
        ("x.rpmnew", False),
        ("x.dpkg-old", False),
        ("README", False),
        ("notes.txt", False),
        ("profile.xml.gz", False),
        ("profile.db", False),
        ("index.html", False),
    ],
)
def test_is_profile_file(name, ok):
    assert is_profile_file(name) is ok


# ------------------------------------------------------------------ URLs


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict[str, tuple[int, dict[str, str], bytes]] = {}

    def do_GET(self):  # noqa: N802 - http.server API
        code, headers, body = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(code)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(context: ssl.SSLContext | None = None):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server


@pytest.fixture
def http_server():
    server = _serve()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_profiles(http_server, monkeypatch):
    _Handler.routes = {
        "/profiles/ed.ac.uk/xenhost7/XML/profile.xml": (200, {}, XML % b"remote"),
        "/bad.xml": (200, {}, b"<html>not xml"),
        "/big.xml": (200, {}, XML % (b"x" * 2000)),
        "/redir": (302, {"Location": "file:///etc/passwd"}, b""),
        "/moved": (301, {"Location": "/profiles/ed.ac.uk/xenhost7/XML/profile.xml"}, b""),
    }
    monkeypatch.setattr(_loader, "MAX_URL_SIZE", 1000)
    base = http_server
    urls = [
        f"{base}/profiles/ed.ac.uk/xenhost7/XML/profile.xml",
        f"{base}/bad.xml",
        f"{base}/missing.xml",
        f"{base}/redir",
        f"{base}/moved",
    ]
    results = {r.source: r for r in load_profiles(urls, "/")}
    good = results[urls[0]]
    assert good.error is None and good.profile.name == "xenhost7"
    assert good.profile.value("xen", "a") == "remote"
    assert good.profile.path == urls[0]
    assert "invalid XML" in str(results[urls[1]].error)
    assert results[urls[1]].error.file == urls[1]
    assert "HTTP error 404" in str(results[urls[2]].error)
    assert results[urls[3]].profile is None  # redirect to file:// refused
    assert results[urls[4]].profile.value("xen", "a") == "remote"
    [big] = load_profiles([f"{base}/big.xml"], "/")
    assert "larger than 1000 bytes" in str(big.error)


def test_url_timeout_and_refused(monkeypatch):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts but never answers
    port = listener.getsockname()[1]
    try:
        [r] = load_profiles([f"http://127.0.0.1:{port}/x.xml"], "/", timeout=0.5)
        assert r.profile is None and "cannot fetch" in str(r.error)
    finally:
        listener.close()
    [r] = load_profiles([f"http://127.0.0.1:{port}/x.xml"], "/", timeout=2)
    assert r.profile is None and "cannot fetch" in str(r.error)


@pytest.fixture
def https_server(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
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
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    server = _serve(context)
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_https_verification(https_server):
    _Handler.routes = {"/h.xml": (200, {}, XML % b"tls")}
    [r] = load_profiles([f"{https_server}/h.xml"], "/")
    assert r.profile is None
    assert "CERTIFICATE_VERIFY_FAILED" in str(r.error) and "validate_certs" in str(r.error)
    [r] = load_profiles([f"{https_server}/h.xml"], "/", validate_certs=False)
    assert r.error is None and r.profile.value("xen", "a") == "tls"
