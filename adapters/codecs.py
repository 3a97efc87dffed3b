"""Payload codecs: JSON (the default), raw bytes and MessagePack.

Every codec returns ``Result`` values and never raises for bad input; the
``CodecError`` names the format and says what went wrong.
"""

from __future__ import annotations

import importlib
import json
from typing import Any, Final

from returns.result import Failure, Result, Success

from taktora_connector.domain import CodecError


class JsonCodec:
    """Strict JSON (RFC 8259) as compact UTF-8: no NaN or infinity, no trailing data."""

    format_name: Final = "json"

    def __init__(self) -> None:
        self._encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        self._decoder = json.JSONDecoder(parse_constant=_reject_constant)

    def encode(self, value: Any) -> Result[bytes, CodecError]:
        try:
            return Success(self._encoder.encode(value).encode("utf-8"))
        except (TypeError, ValueError, RecursionError) as err:
            return Failure(CodecError("json", f"value does not encode as JSON: {err}"))

    def decode(self, data: bytes) -> Result[Any, CodecError]:
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as err:
            return Failure(CodecError("json", f"payload is not UTF-8: {err}", bytes(data)))
        try:
            return Success(self._decoder.decode(text))
        except (ValueError, RecursionError) as err:
            return Failure(CodecError("json", f"payload is not valid JSON: {err}", bytes(data)))

    def __repr__(self) -> str:
        return "JsonCodec()"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in strict JSON")


class BytesCodec:
    """Raw bytes in and out: the payload is exactly the bytes given."""

    format_name: Final = "bytes"

    def encode(self, value: object) -> Result[bytes, CodecError]:
        if isinstance(value, bytes):
            return Success(value)
        if isinstance(value, bytearray | memoryview):
            return Success(bytes(value))
        return Failure(
            CodecError(
                "bytes",
                f"expected bytes, bytearray or memoryview, got {type(value).__name__}",
            )
        )

    def decode(self, data: bytes) -> Result[bytes, CodecError]:
        return Success(bytes(data))

    def __repr__(self) -> str:
        return "BytesCodec()"


class MsgpackCodec:
    """MessagePack, from the ``msgpack`` extra (``pip install taktora-connector[msgpack]``)."""

    format_name: Final = "msgpack"

    def __init__(self) -> None:
        try:
            self._msgpack: Any = importlib.import_module("msgpack")
        except ImportError as err:
            raise ImportError(
                "MsgpackCodec needs the msgpack package: pip install 'taktora-connector[msgpack]'"
            ) from err

    def encode(self, value: Any) -> Result[bytes, CodecError]:
        try:
            return Success(self._msgpack.packb(value, use_bin_type=True))
        except (TypeError, ValueError, OverflowError) as err:
            return Failure(CodecError("msgpack", f"value does not encode as MessagePack: {err}"))

    def decode(self, data: bytes) -> Result[Any, CodecError]:
        try:
            return Success(self._msgpack.unpackb(data, raw=False, strict_map_key=False))
        except Exception as err:
            return Failure(
                CodecError("msgpack", f"payload is not valid MessagePack: {err}", bytes(data))
            )

    def __repr__(self) -> str:
        return "MsgpackCodec()"


__all__ = ["BytesCodec", "JsonCodec", "MsgpackCodec"]
