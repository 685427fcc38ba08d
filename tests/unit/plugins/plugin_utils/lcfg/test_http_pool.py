# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Kept-alive connections for http(s) profile sources (plugin_utils/lcfg/http_pool.py)."""

from __future__ import annotations

import threading
import time
import urllib.error

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_pool import KeptConnections
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.loader import fetch_answer, fetch_profiles, fetch_url
from http_serving import PROFILE_XML, opener, raw_answer, raw_serving, self_signed, serving, trickle


def profile(handler):
    if handler.path.startswith("/missing/"):
        return 404, {}, b"no such profile"
    return 200, {"ETag": '"1"'}, PROFILE_XML % handler.path.split("/")[1].encode()


def read_all(pool, url):
    answer = pool.open(url, {}, 5)
    try:
        return answer.read()
    finally:
        answer.close()


@pytest.mark.parametrize(("keep_alive", "connections"), [(True, 1), (False, 5)])
def test_requests_to_one_server_share_a_kept_alive_connection(keep_alive, connections):
    pool = KeptConnections(lambda: None)
    with serving(profile, keep_alive=keep_alive) as base:
        bodies = [read_all(pool, f"{base}/h{index}/XML/profile.xml") for index in range(5)]
        accepted = serving.connections[0]
    assert bodies == [PROFILE_XML % f"h{index}".encode() for index in range(5)]
    # a connection the server closes after its answer (HTTP/1.0) is not kept
    assert (pool.opened, accepted) == (connections, connections)


def test_the_inventory_opener_keeps_connections_across_parallel_fetches():
    urls_per_worker = 5
    with serving(profile, keep_alive=True) as base:
        urls = [f"{base}/h{index}/XML/profile.xml" for index in range(4 * urls_per_worker)]
        got = fetch_profiles(urls, timeout=5, opener=opener(), concurrency=4)
        accepted = serving.connections[0]
    assert all(got[url][0] == PROFILE_XML % url.split("/")[3].encode() for url in urls)
    assert 1 <= accepted <= 4  # at most one per worker, not one per URL


def test_an_idle_connection_the_server_closed_is_replaced():
    def closing(handler):
        handler.close_connection = True  # closes after answering, without saying so
        return profile(handler)

    pool = KeptConnections(lambda: None)
    with serving(closing, keep_alive=True) as base:
        first = read_all(pool, f"{base}/a/XML/profile.xml")
        second = read_all(pool, f"{base}/b/XML/profile.xml")
        accepted = serving.connections[0]
    assert (first, second) == (PROFILE_XML % b"a", PROFILE_XML % b"b")
    assert accepted == 2 and pool.opened == 2


@pytest.mark.parametrize(("path", "code", "connections"), [("/missing/x", 404, 2), ("/ok/x", 304, 1)])
def test_an_error_answer_is_an_http_error_its_body_unread(path, code, connections):
    def answer(handler):
        if handler.headers.get("If-None-Match") == '"1"':
            return 304, {"ETag": '"1"'}, b""
        return profile(handler)

    pool = KeptConnections(lambda: None)
    with serving(answer, keep_alive=True) as base:
        with pytest.raises(urllib.error.HTTPError) as raised:
            pool.open(f"{base}{path}", {"If-None-Match": '"1"'} if code == 304 else {}, 5)
        after = read_all(pool, f"{base}/next/XML/profile.xml")
        accepted = serving.connections[0]
    assert raised.value.code == code and raised.value.read() == b""
    # a 304 ends with its headers: its connection is kept; after a 404 it is closed
    assert after == PROFILE_XML % b"next" and accepted == connections


def test_a_body_left_unread_never_reaches_the_next_answer():
    big = b"<profile>" + b"x" * 100_000 + b"</profile>"

    def answer(handler):
        return (200, {}, big) if handler.path == "/big" else profile(handler)

    with serving(answer, keep_alive=True) as base:
        open_ = opener()
        with pytest.raises(LcfgError, match="larger than 1000 bytes"):
            fetch_answer(f"{base}/big", timeout=5, max_size=1000, opener=open_)
        assert fetch_url(f"{base}/next/XML/profile.xml", timeout=5, opener=open_) == PROFILE_XML % b"next"
        accepted = serving.connections[0]
    assert accepted == 2  # the half-read connection was dropped, not reused


def test_a_refused_connection_is_a_url_error():
    pool = KeptConnections(lambda: None)
    with serving(profile) as base:
        dead = base
    with pytest.raises(urllib.error.URLError):
        pool.open(f"{dead}/a/XML/profile.xml", {}, 5)


# Answers that must not desynchronise a kept connection, each also run through the loader's
# own urllib opener (a connection per request) as the control
OPENERS = pytest.mark.parametrize("make", [opener, lambda: None], ids=["kept", "urllib"])


@OPENERS
def test_a_304_with_transfer_encoding_chunked_is_not_modified(make):
    # RFC 9112 6.1 / RFC 7230 3.3.1: a server MAY send Transfer-Encoding in a 304; it has no body
    def reply(handler):
        if handler.headers.get("If-None-Match") == '"1"':
            return raw_answer("304 Not Modified", {"ETag": '"1"', "Transfer-Encoding": "chunked"})
        body = PROFILE_XML % b"a"
        return raw_answer("200 OK", {"ETag": '"1"', "Content-Length": len(body)}, body)

    with raw_serving(reply) as base:
        answer = fetch_answer(f"{base}/a/XML/profile.xml", timeout=2, opener=make(), headers={"If-None-Match": '"1"'})
    assert answer.not_modified and answer.etag == '"1"'


@OPENERS
@pytest.mark.parametrize("interim", ["102 Processing", "103 Early Hints"])
def test_an_interim_1xx_answer_never_gives_one_url_another_urls_body(make, interim):
    def reply(handler):
        name = handler.path.split("/")[1]
        body = PROFILE_XML % name.encode()
        final = raw_answer("200 OK", {"Content-Length": len(body)}, body)
        if name == "a":  # the interim answer at once, the final one once it is ready
            handler.wfile.write(raw_answer(interim, {"Link": "</x.css>; rel=preload"}))
            handler.wfile.flush()
            time.sleep(0.3)
        return final

    with raw_serving(reply) as base:
        open_ = make()
        try:
            fetch_url(f"{base}/a/XML/profile.xml", timeout=2, opener=open_)
        except LcfgError:
            pass  # failing /a is acceptable (urllib fails it too); serving its body as /b's is not
        got = fetch_url(f"{base}/b/XML/profile.xml", timeout=2, opener=open_)
    assert got == PROFILE_XML % b"b"


@OPENERS
def test_no_fetch_thread_outlives_its_deadline_reading_a_trickled_error_body(make):
    reply = trickle(raw_answer("404 Not Found", {"Content-Length": 1000}), b"x" * 25)

    before = set(threading.enumerate())
    with raw_serving(reply) as base:
        with pytest.raises(LcfgError):
            fetch_answer(f"{base}/a/XML/profile.xml", timeout=1, opener=make())
        time.sleep(2)  # past the deadline and one socket timeout
        left = [t for t in set(threading.enumerate()) - before if t.name == "lcfg-fetch" and t.is_alive()]
    assert not left


def warm_then(slow_path, slow_reply):
    """A reply: ``/warm`` answers at once (its connection is then kept idle), ``slow_path``
    with the raw bytes ``slow_reply(handler)`` gives."""

    def reply(handler):
        if handler.path == slow_path:
            return slow_reply(handler)
        body = PROFILE_XML % handler.path.split("/")[1].encode()
        return raw_answer("200 OK", {"ETag": '"1"', "Content-Length": len(body)}, body)

    return reply


@pytest.mark.parametrize(
    "slow",
    [
        trickle(b"", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"),  # the status line and headers
        trickle(raw_answer("200 OK", {"Content-Length": 1000}), b"x" * 1000),  # the body
    ],
    ids=["headers", "body"],
)
def test_a_trickled_answer_on_a_kept_connection_fails_at_its_deadline(slow):
    with raw_serving(warm_then("/slow/XML/profile.xml", slow)) as base:
        open_ = opener()
        assert fetch_url(f"{base}/warm/XML/profile.xml", timeout=5, opener=open_) == PROFILE_XML % b"warm"
        start = time.monotonic()
        with pytest.raises(LcfgError, match="no complete answer within the timeout of 1 s"):
            fetch_answer(f"{base}/slow/XML/profile.xml", timeout=1, opener=open_)
        took = time.monotonic() - start
        # the connection cut off is never reused: the next URL gets its own answer
        assert fetch_url(f"{base}/next/XML/profile.xml", timeout=5, opener=open_) == PROFILE_XML % b"next"
    assert 1 <= took < 2.5  # the deadline, not the 25 bytes at 0.2 s each (5 s)


def test_a_redirect_late_on_a_kept_connection_leaves_only_the_rest_of_the_deadline():
    def reply(handler):
        if handler.path == "/moved/XML/profile.xml":
            time.sleep(0.7)
            return raw_answer("302 Found", {"Location": "/silent/XML/profile.xml", "Content-Length": 0})
        if handler.path == "/silent/XML/profile.xml":
            time.sleep(3)  # never answers within the deadline
            return b""
        return warm_then("", None)(handler)

    with raw_serving(reply) as base:
        open_ = opener()
        fetch_url(f"{base}/warm/XML/profile.xml", timeout=5, opener=open_)
        start = time.monotonic()
        with pytest.raises(LcfgError, match="no complete answer within the timeout of 1 s"):
            fetch_answer(f"{base}/moved/XML/profile.xml", timeout=1, opener=open_)
        took = time.monotonic() - start
    assert took < 1.5  # one deadline for the URL, not a second full timeout after the redirect


def test_requests_on_kept_connections_start_no_thread_each(monkeypatch):
    from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import loader

    started = []
    real = loader.threading.Thread

    def counting(*args, target=None, name=None, **kwargs):
        started.append(name)
        return real(*args, target=target, name=name, **kwargs)

    monkeypatch.setattr(loader.threading, "Thread", counting)
    with serving(profile, keep_alive=True) as base:
        open_ = opener()
        bodies = [fetch_url(f"{base}/h{index}/XML/profile.xml", timeout=5, opener=open_) for index in range(5)]
        accepted = serving.connections[0]
    assert bodies == [PROFILE_XML % f"h{index}".encode() for index in range(5)]
    assert started.count("lcfg-fetch") == 1 and accepted == 1  # only the first, to connect


def test_an_idle_connection_the_server_closed_is_replaced_by_the_loader():
    def closing(handler):
        handler.close_connection = True  # closes after answering, without saying so
        return profile(handler)

    with serving(closing, keep_alive=True) as base:
        open_ = opener()
        got = [fetch_url(f"{base}/{name}/XML/profile.xml", timeout=5, opener=open_) for name in "abc"]
    assert got == [PROFILE_XML % name for name in (b"a", b"b", b"c")]


def test_a_redirect_on_a_kept_connection_is_followed():
    def reply(handler):
        if handler.path == "/moved/XML/profile.xml":
            return raw_answer("301 Moved", {"Location": "/there/XML/profile.xml", "Content-Length": 0})
        return warm_then("", None)(handler)

    with raw_serving(reply) as base:
        open_ = opener()
        fetch_url(f"{base}/warm/XML/profile.xml", timeout=5, opener=open_)
        assert fetch_url(f"{base}/moved/XML/profile.xml", timeout=5, opener=open_) == PROFILE_XML % b"there"


def test_a_304_on_a_kept_connection_is_not_modified():
    def reply(handler):
        if handler.headers.get("If-None-Match") == '"1"':
            return raw_answer("304 Not Modified", {"ETag": '"1"'})
        return warm_then("", None)(handler)

    with raw_serving(reply) as base:
        open_ = opener()
        fetch_url(f"{base}/warm/XML/profile.xml", timeout=5, opener=open_)
        answers = [
            fetch_answer(f"{base}/a/XML/profile.xml", timeout=5, opener=open_, headers={"If-None-Match": '"1"'})
            for _attempt in range(3)
        ]
        accepted = raw_serving.connections[0]
    assert all(a.not_modified and a.etag == '"1"' for a in answers) and accepted == 1


def test_a_kept_https_connection_checks_the_server_name(tmp_path):
    cert, context = self_signed(tmp_path, "other.example", "DNS:other.example")
    with serving(profile, context, keep_alive=True) as base, pytest.raises(LcfgError, match="cannot fetch"):
        fetch_url(f"{base}/a/XML/profile.xml", timeout=5, opener=opener(ca_path=str(cert)))


def test_through_a_proxy_no_connection_is_kept(monkeypatch):
    def proxied(handler):
        return 200, {}, PROFILE_XML % b"proxied"

    with serving(proxied, keep_alive=True) as proxy, serving(profile, keep_alive=True) as base:
        monkeypatch.setenv("http_proxy", proxy)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        got = fetch_url(f"{base}/a/XML/profile.xml", timeout=5, opener=opener(use_proxy=True))
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        direct = fetch_url(f"{base}/b/XML/profile.xml", timeout=5, opener=opener(use_proxy=True))
    assert got == PROFILE_XML % b"proxied" and direct == PROFILE_XML % b"b"


def test_an_idle_https_connection_the_server_closed_is_replaced(tmp_path):
    cert, context = self_signed(tmp_path, "127.0.0.1", "IP:127.0.0.1")

    def closing(handler):
        handler.close_connection = True  # closes after answering, without saying so
        return profile(handler)

    open_ = opener(ca_path=str(cert))
    with serving(closing, context, keep_alive=True) as base:
        got = [fetch_url(f"{base}/h{index}/XML/profile.xml", timeout=5, opener=open_) for index in range(3)]
    assert got == [PROFILE_XML % f"h{index}".encode() for index in range(3)]
