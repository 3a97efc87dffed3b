"""REQ_0257, the MQTT 3.1.1 baseline: the protocol level and correlation ids."""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any

from returns.pipeline import is_successful
from returns.result import Result, Success

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
    RecvEnvelope,
)
from taktora_connector.ports import PayloadCodec

from .base import ChannelWrapper, Wrapper
from .registry import breaks


@breaks("REQ_0257", caught_by="TEST_2570", broker="mosquitto")
def speaks_mqtt31(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    """MQTT 3.1 instead of 3.1.1 (amqtt refuses it; mosquitto accepts it)."""
    import paho.mqtt.client as paho

    connector: MqttConnector[Any] = MqttConnector(options, codec)
    gateway: Any = connector._gateway  # tests may reach inside; the kit may not
    make = gateway._make_client

    def make_v31() -> Any:
        client = make()
        client._protocol = paho.MQTTv31
        return client

    gateway._make_client = make_v31
    return connector


# Correlation ids over MQTT 3.1.1 (REQ_0257, TEST_2571) -------------------------------

#: What the in-band connector puts before the codec's bytes, then the 32-byte id.
IN_BAND_MARK = b"\x00cid"


class _Framed:
    """Bytes to publish as they are (the in-band codec passes them through)."""

    def __init__(self, data: bytes) -> None:
        self.data = data


class InBandCodec:
    """The connector's codec: passes framed bytes through, and takes the frame off
    what it decodes."""

    def __init__(self, inner: PayloadCodec[Any]) -> None:
        self.inner = inner

    @property
    def format_name(self) -> str:
        return self.inner.format_name

    def encode(self, value: Any) -> Result[bytes, Any]:
        if isinstance(value, _Framed):
            return Success(value.data)
        return self.inner.encode(value)

    def decode(self, data: bytes) -> Result[Any, Any]:
        if data.startswith(IN_BAND_MARK):
            data = data[len(IN_BAND_MARK) + 32 :]
        return self.inner.decode(data)


class InBandWriter(ChannelWrapper):
    def __init__(self, inner: Any, codec: PayloadCodec[Any]) -> None:
        super().__init__(inner)
        self.codec = codec

    def send(self, value: Any, *, correlation_id: bytes | None = None) -> Any:
        if correlation_id is None:
            return self.inner.send(value)
        encoded = self.codec.encode(value)
        if not is_successful(encoded):
            return encoded
        return self.inner.send(_Framed(IN_BAND_MARK + correlation_id + encoded.unwrap()))


class UnframingReader(ChannelWrapper):
    """Envelopes with the frame taken off the payload (the id itself is not kept)."""

    def _fix(self, envelope: RecvEnvelope[Any, MqttRouting] | None) -> Any:
        if envelope is None or not envelope.payload.startswith(IN_BAND_MARK):
            return envelope
        return dataclasses.replace(envelope, payload=envelope.payload[len(IN_BAND_MARK) + 32 :])

    def recv(self, timeout: float | None = None) -> Any:
        return self.inner.recv(timeout).map(self._fix)

    def try_recv(self) -> Any:
        return self.inner.try_recv().map(self._fix)


class CorrelationIdOnTheWire(Wrapper):
    """Carries correlation ids in-band, in front of the payload (TEST_2571): its own
    readers take them off again, but any other MQTT client gets altered payloads."""

    def __init__(self, inner: MqttConnector[Any], codec: PayloadCodec[Any]) -> None:
        super().__init__(inner)
        self.codec = codec

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_writer(descriptor).map(lambda w: InBandWriter(w, self.codec))

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(UnframingReader)


@breaks("REQ_0257", caught_by="TEST_2571")
def correlation_id_on_the_wire(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return CorrelationIdOnTheWire(MqttConnector(options, InBandCodec(codec)), codec)


class PayloadHashIdReader(ChannelWrapper):
    """Gives every envelope a correlation id made from its payload, not zeros."""

    @staticmethod
    def _fix(envelope: RecvEnvelope[Any, MqttRouting] | None) -> Any:
        if envelope is None:
            return None
        made = hashlib.sha256(envelope.payload).digest()
        return dataclasses.replace(envelope, correlation_id=made)

    def recv(self, timeout: float | None = None) -> Any:
        return self.inner.recv(timeout).map(self._fix)

    def try_recv(self) -> Any:
        return self.inner.try_recv().map(self._fix)


class InventsCorrelationIds(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(PayloadHashIdReader)


@breaks("REQ_0257", caught_by="TEST_2571")
def invents_correlation_ids(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return InventsCorrelationIds(MqttConnector(options, codec))
