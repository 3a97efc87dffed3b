"""The payload codec port: values to bytes and back, failures as values."""

from __future__ import annotations

from typing import Protocol, TypeVar

from returns.result import Result

from taktora_connector.domain import CodecError

T = TypeVar("T")


class PayloadCodec(Protocol[T]):
    """Turns channel values into payload bytes and back.

    ``format_name`` names the format in errors and reports (``"json"``). Neither
    method raises for bad input: a value that does not encode, or bytes that do
    not decode, come back as ``Failure(CodecError)``.
    """

    @property
    def format_name(self) -> str: ...

    def encode(self, value: T) -> Result[bytes, CodecError]: ...

    def decode(self, data: bytes) -> Result[T, CodecError]: ...
