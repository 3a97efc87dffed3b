"""Codec round trips and failures."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taktora_connector.adapters.codecs import BytesCodec, JsonCodec, MsgpackCodec
from taktora_connector.domain import CodecError

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)  # MessagePack's integer range
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_json_round_trip(value: object) -> None:
    codec = JsonCodec()
    assert codec.decode(codec.encode(value).unwrap()).unwrap() == value


@given(st.binary())
def test_bytes_round_trip_is_identity(data: bytes) -> None:
    codec = BytesCodec()
    assert codec.encode(data).unwrap() == data
    assert codec.decode(data).unwrap() == data


@given(json_values | st.binary())
def test_msgpack_round_trip(value: object) -> None:
    codec = MsgpackCodec()
    assert codec.decode(codec.encode(value).unwrap()).unwrap() == value


def test_json_is_compact_utf8() -> None:
    assert JsonCodec().encode({"t": "ü", "v": [1, 2]}).unwrap() == '{"t":"ü","v":[1,2]}'.encode()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1j}, object(), {"k": b"x"}])
def test_json_encode_failures_name_the_format(value: object) -> None:
    error = JsonCodec().encode(value).failure()
    assert isinstance(error, CodecError)
    assert error.format == "json"
    assert "does not encode as JSON" in str(error)
    assert error.payload is None


@pytest.mark.parametrize("data", [b"\xff\xfe", b"{", b"NaN", b"[1] 2", b""])
def test_json_decode_failures_keep_the_raw_bytes(data: bytes) -> None:
    error = JsonCodec().decode(data).failure()
    assert isinstance(error, CodecError)
    assert error.format == "json"
    assert error.payload == data


def test_bytes_codec_refuses_other_types() -> None:
    error = BytesCodec().encode("text").failure()
    assert error.format == "bytes"
    assert "expected bytes" in error.cause
    assert BytesCodec().encode(bytearray(b"ab")).unwrap() == b"ab"


def test_msgpack_failures() -> None:
    assert MsgpackCodec().encode(object()).failure().format == "msgpack"
    assert "does not encode" in str(MsgpackCodec().encode(2**64).failure())
    error = MsgpackCodec().decode(b"\xc1").failure()
    assert error.format == "msgpack"
    assert error.payload == b"\xc1"


def test_format_names() -> None:
    assert [JsonCodec().format_name, BytesCodec().format_name, MsgpackCodec().format_name] == [
        "json",
        "bytes",
        "msgpack",
    ]
