# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pipelined requests for http(s) profile sources (plugin_utils/lcfg/http_pipeline.py), alone
and through the loader with the inventory plugin's opener."""

from __future__ import annotations

import socket
import ssl
import threading
import time

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg import http_pipeline
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.errors import LcfgError
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_pipeline import get_pipelined, request_bytes
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.http_store import HttpStore, StoredAnswer
from ansible_collections.lcfg.xen.plugins.plugin_utils.lcfg.loader import fetch_profiles
from http_serving import PROFILE_XML, opener, raw_answer, raw_serving, self_signed, serving, trickle


def body_of(name):
    return PROFILE_XML % name.encode()


def name_of(handler):
    return handler.path.split("/")[1]


def answering(handler, extra=None):
    """A 304 to a request with this URL's ETag, else the URL's own body with its ETag."""
    name = name_of(handler)
    tag = f'"{name}"'
    if handler.headers.get("If-None-Match") == tag:
        return raw_answer("304 Not Modified", {"ETag": tag, **(extra or {})})
    body = body_of(name)
    return raw_answer("200 OK", {"ETag": tag, "Content-Length": len(body), **(extra or {})}, body)


def urls_of(base, count):
    return [f"{base}/h{index:03d}/XML/profile.xml" for index in range(count)]


def server_of(base):
    host, port = base.split("//")[1].split(":")
    return ("http", host, int(port))


def requests_for(base, names, headers=None):
    _scheme, host, port = server_of(base)
    return [request_bytes(host, port, 80, f"/{name}/XML/profile.xml", headers or {}) for name in names]


# --- request_bytes --------------------------------------------------------------------------


def test_a_request_is_a_plain_http_1_1_get():
    request = request_bytes("lcfg.example.org", 8080, 80, "/a/XML/profile.xml?x=1", {"If-None-Match": '"7"'})
    assert request == (
        b"GET /a/XML/profile.xml?x=1 HTTP/1.1\r\nHost: lcfg.example.org:8080\r\nAccept-Encoding: identity\r\n"
        b'If-None-Match: "7"\r\n\r\n'
    )
    assert request_bytes("::1", 443, 443, "/", {}).startswith(b"GET / HTTP/1.1\r\nHost: [::1]\r\n")


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        ("/a b", {}),  # a space in the target
        ("/a\r\nX-Injected: 1", {}),
        ("/caf\u00e9", {}),  # not ASCII: http.client refuses it, the ordinary path says so
        ("relative", {}),
        ("/a", {"X-Header": "a\r\nX-Injected: 1"}),
        ("/a", {"Bad Name": "1"}),
        ("/a", {"Host": "elsewhere"}),  # the request's own framing is never a header to set
        ("/a", {"Content-Length": "5"}),
        ("/a", {"X-Name": "\u20ac"}),  # not latin-1
    ],
)
def test_a_request_http_client_would_refuse_or_change_is_not_pipelined(target, headers):
    assert request_bytes("lcfg.example.org", 80, 80, target, headers) is None


# --- get_pipelined alone --------------------------------------------------------------------


def test_every_answer_reaches_its_own_request_on_a_few_connections():
    names = [f"h{index:03d}" for index in range(250)]
    with raw_serving(answering) as base:
        answers = get_pipelined(server_of(base), requests_for(base, names), 5, 1 << 20, lambda: None, connections=2)
        accepted = raw_serving.connections[0]
    assert [answer.body for answer in answers] == [body_of(name) for name in names]
    assert [answer.etag for answer in answers] == [f'"{name}"' for name in names]
    assert accepted == 2


@pytest.mark.parametrize("say_so", [True, False], ids=["connection-close", "silent-close"])
def test_a_server_closing_between_answers_gets_the_rest_on_new_connections(say_so):
    served = [0]
    lock = threading.Lock()

    def reply(handler):
        with lock:
            served[0] += 1
            last = served[0] % 7 == 0  # like Apache's MaxKeepAliveRequests, but 7
        if last:
            handler.close_connection = True  # the requests pipelined behind it are dropped
        return answering(handler, {"Connection": "close"} if last and say_so else None)

    names = [f"h{index:03d}" for index in range(60)]
    with raw_serving(reply) as base:
        answers = get_pipelined(server_of(base), requests_for(base, names), 5, 1 << 20, lambda: None, connections=2)
        accepted = raw_serving.connections[0]
    assert [answer.body for answer in answers] == [body_of(name) for name in names]
    assert accepted >= 60 // 7


def test_a_304_is_taken_without_a_body_even_with_framing_headers():
    def reply(handler):
        return raw_answer("304 Not Modified", {"ETag": '"x"', "Transfer-Encoding": "chunked", "Content-Length": 99})

    asked = [('"x"', None)] * 3
    with raw_serving(reply) as base:
        requests = requests_for(base, ["a", "b", "c"], {"If-None-Match": '"x"'})
        answers = get_pipelined(server_of(base), requests, 5, 1 << 20, lambda: None, 4, asked)
        # a 304 to a request that was not conditional, or for another ETag: out of step
        unasked = get_pipelined(server_of(base), requests_for(base, ["a"]), 5, 1 << 20, lambda: None)
        other = get_pipelined(server_of(base), requests_for(base, ["a"]), 5, 1 << 20, lambda: None, 1, [('"y"', None)])
    assert [(a.status, a.body, a.etag) for a in answers] == [(304, None, '"x"')] * 3
    assert unasked == other == [None]


@pytest.mark.parametrize(
    ("asked", "answered"), [('W/"x"', '"x"'), ('"x"', 'W/"x"')], ids=["weak-asked", "weak-answered"]
)
def test_a_304_whose_tag_differs_only_by_its_weak_mark_is_taken(asked, answered):
    # Apache httpd tags a file weak in its first second, and answers the weak tag's If-None-Match
    # with the strong one: the same tag, compared weakly as If-None-Match is
    def reply(handler):
        return raw_answer("304 Not Modified", {"ETag": answered})

    with raw_serving(reply) as base:
        requests = requests_for(base, ["a", "b"], {"If-None-Match": asked})
        answers = get_pipelined(server_of(base), requests, 5, 1 << 20, lambda: None, 1, [(asked, None)] * 2)
        other = get_pipelined(server_of(base), requests[:1], 5, 1 << 20, lambda: None, 1, [('W/"y"', None)])
    assert [(a.status, a.etag) for a in answers] == [(304, answered)] * 2
    assert other == [None]


@pytest.mark.parametrize(
    ("odd", "rest_follow"),
    [
        (raw_answer("302 Found", {"Location": "/elsewhere", "Content-Length": 3}, b"see"), True),
        (raw_answer("404 Not Found", {"Content-Length": 9}, b"not there"), True),
        (raw_answer("200 OK", {"Transfer-Encoding": "chunked"}, b"5\r\nhello\r\n0\r\n\r\n"), False),
        (raw_answer("200 OK", {"Content-Length": 2 << 20}), False),  # over max_size
        (raw_answer("200 OK", {"Content-Length": "5, 6"}, b"hello"), False),
        (raw_answer("103 Early Hints", {"Link": "</x>"}), False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", False),
        (b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello", False),  # bare line feeds
        (b"HTTP/1.1 200 OK\r\n Folded: x\r\nContent-Length: 5\r\n\r\nhello", False),
        (raw_answer("500 Oops", {"Content-Length": 1 << 20}), False),  # too long to read past
    ],
    ids=[
        "redirect",
        "404",
        "chunked",
        "too-large",
        "two-lengths",
        "interim",
        "http-1.0",
        "bare-lf",
        "folded",
        "big-error",
    ],
)
def test_an_answer_not_taken_leaves_its_url_to_the_ordinary_path(odd, rest_follow):
    def reply(handler):
        if name_of(handler) == "b":
            handler.wfile.write(odd)
            handler.wfile.flush()
            handler.close_connection = not rest_follow
            return b""
        return answering(handler)

    with raw_serving(reply) as base:
        answers = get_pipelined(server_of(base), requests_for(base, ["a", "b", "c"]), 5, 1 << 20, lambda: None, 1)
    if rest_follow:  # read whole: the answers around it are taken
        assert [answers[0].body, answers[1], answers[2].body] == [body_of("a"), None, body_of("c")]
    else:  # the batch did not end cleanly: all of it goes the ordinary way
        assert answers == [None, None, None]


def test_a_trickled_answer_fails_at_its_own_deadline_and_leaves_the_rest():
    slow = trickle(b"HTTP/1.1 200 OK\r\n", b"X" * 30)

    def reply(handler):
        return slow(handler) if name_of(handler) == "slow" else answering(handler)

    with raw_serving(reply) as base:
        start = time.monotonic()
        answers = get_pipelined(server_of(base), requests_for(base, ["a", "slow", "c"]), 1, 1 << 20, lambda: None, 1)
        took = time.monotonic() - start
    # after an answer came, a timeout may be a server that does not pipeline: the ordinary way
    assert answers == [None, None, None]
    assert 1 <= took < 2.5  # one deadline, not 30 bytes at 0.2 s each


def test_a_connection_without_any_answer_fails_its_first_url_at_the_deadline():
    slow = trickle(b"HTTP/1.1 200 OK\r\n", b"X" * 30)
    with raw_serving(slow) as base:
        start = time.monotonic()
        answers = get_pipelined(server_of(base), requests_for(base, ["a", "b", "c"]), 1, 1 << 20, lambda: None, 1)
        took = time.monotonic() - start
    assert isinstance(answers[0], TimeoutError) and answers[1:] == [None, None]
    assert 1 <= took < 2.5


def test_a_connection_that_never_completes_is_left_to_the_ordinary_path(monkeypatch):
    # connecting blocks past the deadline (a name that does not resolve): the caller gives up
    monkeypatch.setattr(http_pipeline, "GRACE", 0.2)
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stalled = threading.Event()

    def slow_connect(self):
        stalled.wait(10)  # as a name that does not resolve blocks
        raise OSError("never")

    monkeypatch.setattr(http_pipeline._Pipeline, "_connect", slow_connect)
    try:
        start = time.monotonic()
        requests = [b"GET / HTTP/1.1\r\n\r\n"] * 3
        answers = get_pipelined(("http", "127.0.0.1", port), requests, 0.5, 1 << 20, lambda: None)
        took = time.monotonic() - start
    finally:
        stalled.set()
        listener.close()
    # they waited a whole deadline (and the grace) for a connection: timed out
    assert all(isinstance(answer, TimeoutError) for answer in answers)
    assert took < 2


def test_a_refused_connection_fails_its_urls_as_the_ordinary_path_words_it():
    with socket.socket() as bound:  # a port held, not listening: no other test can take it
        bound.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{bound.getsockname()[1]}"
        answers = get_pipelined(server_of(base), [b"GET / HTTP/1.1\r\n\r\n"] * 2, 2, 1 << 20, lambda: None)
        got = fetch_profiles(urls_of(base, 2), timeout=2, opener=opener())
    # what a worker had taken fails with its error; what none had taken goes the ordinary way
    assert isinstance(answers[0], ConnectionRefusedError) or isinstance(answers[1], ConnectionRefusedError)
    assert all(answer is None or isinstance(answer, ConnectionRefusedError) for answer in answers)
    assert all("cannot fetch: [Errno 111] Connection refused" in str(error) for error in got.values()), got


# --- through the loader and the inventory plugin's opener -----------------------------------


def test_an_unchanged_site_is_one_304_per_profile_on_a_few_connections(tmp_path):
    store = HttpStore(str(tmp_path / "store"))
    with raw_serving(answering) as base:
        urls = urls_of(base, 120)
        first = fetch_profiles(urls, timeout=5, opener=opener(), store=store)
        accepted = raw_serving.connections[0]
        again = fetch_profiles(urls, timeout=5, opener=opener(), store=store)
        accepted_again = raw_serving.connections[0] - accepted
    assert all(first[url][0] == body_of(url.split("/")[3]) for url in urls)
    assert all(isinstance(again[url][0], StoredAnswer) and again[url][1] == first[url][1] for url in urls)
    assert accepted <= 8 and accepted_again <= 8  # http_concurrency, not one per URL


def test_what_the_pipeline_leaves_goes_the_ordinary_way_with_its_own_errors(tmp_path):
    def reply(handler):
        name = name_of(handler)
        if name == "moved":
            return raw_answer("301 Moved", {"Location": "/target/XML/profile.xml", "Content-Length": 0})
        if name == "gone":
            return raw_answer("404 Not Found", {"Content-Length": 4}, b"gone")
        if name == "chunked":
            body = body_of("chunked")
            return raw_answer("200 OK", {"Transfer-Encoding": "chunked"}, b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
        return answering(handler)

    with raw_serving(reply) as base:
        names = ["a", "moved", "gone", "chunked", "z"]
        urls = [f"{base}/{name}/XML/profile.xml" for name in names]
        got = fetch_profiles(urls, timeout=5, opener=opener(), store=HttpStore(str(tmp_path / "s")))
    assert got[urls[0]][0] == body_of("a") and got[urls[4]][0] == body_of("z")
    assert got[urls[1]][0] == body_of("target")  # the redirect followed
    assert isinstance(got[urls[2]], LcfgError) and "HTTP error 404" in str(got[urls[2]])
    assert got[urls[3]][0] == body_of("chunked")


def test_a_304_for_other_validators_is_asked_again_in_full(tmp_path):
    store = HttpStore(str(tmp_path / "s"))
    changed = [False]

    def reply(handler):
        if changed[0] and handler.headers.get("If-None-Match"):
            return raw_answer("304 Not Modified", {"ETag": '"other"'})
        return answering(handler)

    with raw_serving(reply) as base:
        urls = urls_of(base, 3)
        fetch_profiles(urls, timeout=5, opener=opener(), store=store)
        changed[0] = True
        got = fetch_profiles(urls, timeout=5, opener=opener(), store=store)
    assert all(got[url][0] == body_of(url.split("/")[3]) for url in urls)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-at-a-time"])
def test_a_weak_tag_answered_with_the_strong_one_is_fetched_once_more(tmp_path, pipelining):
    # Apache httpd: a file in its first second gets a weak ETag from its size and mtime; a request
    # with it later gets a 304 (weak comparison) with the strong tag. A file rewritten in that
    # second with the same size has the same tag, so the kept body may be the old one: it is
    # fetched again, once, and the strong tag it comes with confirms it from then on.
    from ansible_collections.lcfg.xen.plugins.inventory.lcfg import make_opener  # noqa: PLC0415

    version = [b"old"]
    bodies = [0]

    def reply(handler):
        name = name_of(handler)
        if handler.headers.get("If-None-Match") in (f'"{name}"', f'W/"{name}"'):
            return raw_answer("304 Not Modified", {"ETag": f'"{name}"'})
        bodies[0] += 1
        body = body_of(name + version[0].decode())
        tag = f'"{name}"' if version[0] == b"new" else f'W/"{name}"'
        return raw_answer("200 OK", {"ETag": tag, "Content-Length": len(body)}, body)

    store = HttpStore(str(tmp_path / "s"))
    with raw_serving(reply) as base:
        urls = urls_of(base, 6)
        read = make_opener({}, True, None, None, None, False, pipelining=pipelining)
        fetch_profiles(urls, timeout=5, opener=read, store=store)
        version[0] = b"new"  # rewritten within its first second: the same size, the same tag
        again = fetch_profiles(urls, timeout=5, opener=read, store=store)
        assert bodies[0] == 12
        third = fetch_profiles(urls, timeout=5, opener=read, store=store)
    assert bodies[0] == 12  # the strong tag now kept: 304s only
    for got in (again, third):
        assert [_body(got[url][0]) for url in urls] == [body_of(url.split("/")[3] + "new") for url in urls]


def _body(data):
    return data.read_body() if isinstance(data, StoredAnswer) else data


def test_pipelining_can_be_turned_off():
    from ansible_collections.lcfg.xen.plugins.inventory.lcfg import make_opener  # noqa: PLC0415

    assert not hasattr(make_opener({}, True, None, None, None, False, pipelining=False), "open_pipelined")
    with raw_serving(answering) as base:
        urls = urls_of(base, 6)
        got = fetch_profiles(urls, opener=make_opener({}, True, None, None, None, False, pipelining=False))
    assert all(got[url][0] == body_of(url.split("/")[3]) for url in urls)


@pytest.mark.parametrize("conditional", [True, False], ids=["304s", "bodies"])
def test_an_answer_no_request_asked_for_makes_the_batch_go_the_ordinary_way(tmp_path, conditional):
    # a broken server answering one request twice: every later answer would be one URL late
    def reply(handler):
        data = answering(handler)
        name = name_of(handler)
        if conditional:
            return data + data if name == "h001" else data
        return data + data if name == "h005" else data  # the last one: the extra is read with it

    names = [f"h{index:03d}" for index in range(6)]
    with raw_serving(reply) as base:
        urls = urls_of(base, 6)
        store = HttpStore(str(tmp_path / "s"))
        if conditional:
            for url, name in zip(urls, names, strict=True):
                store.remember(url, body_of(name), f'"{name}"', None)
        headers = [{"If-None-Match": f'"{name}"'} if conditional else {} for name in names]
        requests = [requests_for(base, [name], header)[0] for name, header in zip(names, headers, strict=True)]
        validators = [(header.get("If-None-Match"), None) for header in headers]
        answers = get_pipelined(server_of(base), requests, 5, 1 << 20, lambda: None, 1, validators)
        got = fetch_profiles(urls, timeout=5, opener=opener(), store=store, concurrency=1)
    assert answers == [None] * 6
    for url, name in zip(urls, names, strict=True):  # each its own body, kept or fetched
        data = got[url][0]
        assert (data.read_body() if isinstance(data, StoredAnswer) else data) == body_of(name)


def test_a_server_that_does_not_pipeline_still_gives_every_url_its_body(tmp_path):
    # it answers one request and loses what was sent behind it (keep-alive without pipelining)
    def reply(handler):
        handler.rfile = type(handler.rfile)(handler.rfile.raw, 1)  # what was buffered is lost
        return answering(handler)

    with raw_serving(reply) as base:
        urls = urls_of(base, 4)
        start = time.monotonic()
        got = fetch_profiles(urls, timeout=1, opener=opener(), concurrency=2)
        took = time.monotonic() - start
    assert all(got[url][0] == body_of(url.split("/")[3]) for url in urls)
    assert took < 2.5  # one deadline of the pipeline, then the ordinary way at once


def test_an_error_whose_body_never_comes_is_still_its_own_error(tmp_path):
    def reply(handler):
        name = name_of(handler)
        if name == "gone":  # promises a body it does not send, on a kept connection
            return raw_answer("404 Not Found", {"Content-Length": 100}, b"short")
        if name == "moved":
            return raw_answer("301 Moved", {"Location": "/target/XML/profile.xml", "Content-Length": 50}, b"")
        return answering(handler)

    with raw_serving(reply) as base:
        urls = [f"{base}/{name}/XML/profile.xml" for name in ("a", "gone", "moved")]
        got = fetch_profiles(urls, timeout=1, opener=opener(), concurrency=1)
    assert got[urls[0]][0] == body_of("a")
    assert isinstance(got[urls[1]], LcfgError) and "HTTP error 404" in str(got[urls[1]])
    assert got[urls[2]][0] == body_of("target")


def test_slow_answers_are_spread_over_the_connections_and_servers_are_read_together():
    def slow(handler):
        time.sleep(0.5)
        return answering(handler)

    with raw_serving(slow) as first, raw_serving(slow) as second:
        urls = urls_of(first, 8) + urls_of(second, 8)
        start = time.monotonic()
        got = fetch_profiles(urls, timeout=5, opener=opener(), concurrency=4)
        took = time.monotonic() - start
    assert all(got[url][0] == body_of(url.split("/")[3]) for url in urls)
    # 8 URLs on 4 connections per server, both servers at once: 2 answers of 0.5 s in turn (1 s);
    # one connection per server would take 4 s, one server after the other 2 s
    assert took < 1.9


@pytest.mark.parametrize(("name", "alt", "works"), [("127.0.0.1", "IP:127.0.0.1", True), ("other", "DNS:other", False)])
def test_https_is_pipelined_with_the_server_name_checked(tmp_path, name, alt, works):
    def answer(handler):  # answering()'s answers, as serving() takes them
        tag = f'"{name_of(handler)}"'
        if handler.headers.get("If-None-Match") == tag:
            return 304, {"ETag": tag}, b""
        return 200, {"ETag": tag}, body_of(name_of(handler))

    cert, context = self_signed(tmp_path, name, alt)
    store = HttpStore(str(tmp_path / "s"))
    with serving(answer, context, keep_alive=True) as base:
        urls = urls_of(base, 12)
        got = fetch_profiles(urls, timeout=5, opener=opener(ca_path=str(cert)), store=store, concurrency=3)
        accepted = serving.connections[0]
        again = fetch_profiles(urls, timeout=5, opener=opener(ca_path=str(cert)), store=store, concurrency=3)
        client = ssl.create_default_context(cafile=str(cert))
        names = [f"h{index:03d}" for index in range(12)]
        server = ("https", *server_of(base)[1:])
        direct = get_pipelined(server, requests_for(base, names), 5, 1 << 20, lambda: client, 3)
    if works:
        assert [answer.body for answer in direct] == [body_of(name) for name in names]  # pipelined itself
        assert all(got[url][0] == body_of(url.split("/")[3]) for url in urls)
        assert all(isinstance(again[url][0], StoredAnswer) for url in urls)
        assert accepted <= 3  # pipelined on http_concurrency connections, not one per URL
    else:  # the certificate names another server: the ordinary path's error and hint
        assert all("CERTIFICATE_VERIFY_FAILED" in str(got[url]) for url in urls)
        assert all(isinstance(answer, ssl.SSLCertVerificationError) for answer in direct if answer is not None)
