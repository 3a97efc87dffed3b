"""The send rules every writer applies before it queues a message (public through
``taktora_connector.adapters.toolkit``).

Rules of this module:
- a correlation id is validated, then not put on the wire (MQTT 3.1.1 has nowhere
  to carry it);
- a codec that raises, or answers with something its contract does not allow, is a
  ``CodecError`` naming what it did, never an exception out of ``send``;
- a payload above the channel's limit, or above what one MQTT PUBLISH can carry, is
  ``PayloadOverflow`` naming the limit.
"""

from __future__ import annotations

from typing import Any

from returns.result import Failure, Success

from taktora_connector.adapters.mqtt.protocol.packets import publish_payload_limit
from taktora_connector.domain import (
    CodecError,
    ConfigurationError,
    ConnectorError,
    PayloadOverflow,
    validate_correlation_id,
)
from taktora_connector.ports import PayloadCodec


def payload_limit(max_payload_size: int, topic: str, qos: int) -> int:
    """The largest payload a writer may accept: the channel's ``max_payload_size``,
    and no more than one MQTT 3.1.1 PUBLISH of this topic and QoS can carry (its
    remaining length is at most 268,435,455 bytes)."""
    return min(max_payload_size, publish_payload_limit(topic, qos))


def codec_broke(codec: Any, what: str, payload: bytes | None = None) -> CodecError:
    """A codec raised, or answered with something its contract does not allow."""
    name = getattr(codec, "format_name", type(codec).__name__)
    return CodecError(str(name), f"the codec broke its contract: {what}", payload)


def encode_payload(
    codec: PayloadCodec[Any], value: object, correlation_id: bytes | None, limit: int
) -> bytes | ConnectorError:
    """The bytes to publish for ``value``, or the error ``send`` must return.

    A plain value, not a ``Result``, so that the send path makes no object it does
    not need: ``isinstance(answer, bytes)`` tells them apart. ``limit`` is
    ``payload_limit(...)`` of the writer's channel.
    """
    if correlation_id is not None:
        # MQTT 3.1.1 has nowhere to carry it: validated, then not put on the wire.
        try:
            validate_correlation_id(correlation_id)
        except ConfigurationError as err:
            return err
    try:
        answer: Any = codec.encode(value)  # a Result, checked: a codec may break that
    except Exception as err:  # a codec that breaks its contract: still an answer
        return codec_broke(codec, f"encode raised {err!r}")
    if not isinstance(answer, Success):
        if isinstance(answer, Failure):
            error: Any = answer.failure()
            if isinstance(error, ConnectorError):
                return error
            return codec_broke(codec, f"encode failed with {error!r}, not a ConnectorError")
        return codec_broke(codec, f"encode returned {answer!r}")
    payload: Any = answer.unwrap()
    if payload.__class__ is not bytes:
        if not isinstance(payload, bytes | bytearray | memoryview):
            return codec_broke(codec, f"encode gave a {type(payload).__name__}, not bytes")
        payload = bytes(payload)
    if len(payload) > limit:
        return PayloadOverflow(len(payload), limit)
    return payload  # type: ignore[no-any-return]
