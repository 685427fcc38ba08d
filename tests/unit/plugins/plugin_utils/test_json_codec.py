# Copyright: lcfg.xen contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The inventory caches' JSON (plugins/plugin_utils/json_codec.py), with and without orjson."""

from __future__ import annotations

import json

import pytest

from ansible_collections.lcfg.xen.plugins.plugin_utils import json_codec

SAMPLE = {
    "hosts": [{"name": "h\u00e9", "memory": 512, "weight": 0.5, "ok": True, "none": None, "tags": ["a", "\u2603"]}],
    "big": 2**70,  # beyond orjson's 64 bits: the standard library takes it
    "": {"nested": [[], {}]},
}


@pytest.fixture(params=["orjson", "json"])
def codec(request, monkeypatch):
    if request.param == "json":
        monkeypatch.setattr(json_codec, "orjson", None)
    elif json_codec.orjson is None:
        pytest.skip("orjson is not installed here")
    return json_codec


def test_data_comes_back_as_it_went_in(codec):
    encoded = codec.dumps(SAMPLE)
    assert isinstance(encoded, bytes)
    assert codec.loads(encoded) == SAMPLE == json.loads(encoded)
    assert codec.loads(encoded.decode()) == SAMPLE


def test_what_only_the_standard_library_reads_is_still_read(codec):
    assert codec.loads("[NaN, 1e400, 123456789012345678901234567890]")[2] == 123456789012345678901234567890


@pytest.mark.parametrize("text", ["{not json", "[1,", "", "\ud800"])
def test_what_is_not_json_is_a_value_error(codec, text):
    with pytest.raises(ValueError):
        codec.loads(text)
