"""REQ_0251, routing: what a received envelope says about its message."""

from __future__ import annotations

import dataclasses
from typing import Any

from returns.result import Failure

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
    RecvEnvelope,
)
from taktora_connector.ports import PayloadCodec

from .base import ChannelWrapper, Wrapper
from .registry import breaks


class QosForgettingReader(ChannelWrapper):
    """Reports every received message as QoS 0, whatever it arrived with."""

    def recv(self, timeout: float | None = None) -> Any:
        return self.inner.recv(timeout).map(self._fix)

    def try_recv(self) -> Any:
        return self.inner.try_recv().map(self._fix)

    @staticmethod
    def _fix(envelope: RecvEnvelope[Any, MqttRouting] | None) -> Any:
        if envelope is None:
            return None
        routing = MqttRouting.delivered(envelope.routing.topic or "", 0, envelope.routing.retained)
        return dataclasses.replace(envelope, routing=routing)


class ForgetsReceivedQos(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(QosForgettingReader)


@breaks("REQ_0251", caught_by=("TEST_2510", "TEST_2512"))
def forgets_received_qos(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return ForgetsReceivedQos(MqttConnector(options, codec))


class ReaderQosReader(ChannelWrapper):
    """Reports the reader's own QoS for every message, not the QoS it was delivered at
    (a QoS 1 reader of a QoS 0 message says QoS 1)."""

    def recv(self, timeout: float | None = None) -> Any:
        return self.inner.recv(timeout).map(self._fix)

    def try_recv(self) -> Any:
        return self.inner.try_recv().map(self._fix)

    def _fix(self, envelope: RecvEnvelope[Any, MqttRouting] | None) -> Any:
        if envelope is None:
            return None
        own = int(self.inner.descriptor.routing.qos)
        routing = MqttRouting.delivered(
            envelope.routing.topic or "", own, envelope.routing.retained
        )
        return dataclasses.replace(envelope, routing=routing)


class CopiesReaderQos(Wrapper):
    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(ReaderQosReader)


@breaks("REQ_0251", caught_by="TEST_2512")
def copies_reader_qos(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return CopiesReaderQos(MqttConnector(options, codec))


class VagueDollarRefusal(Wrapper):
    """Refuses a writer to a ``$`` topic, but without naming the topic or the ``$``."""

    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        topic = descriptor.routing.topic or ""
        if topic.startswith("$"):
            return Failure(ConfigurationError("this writer is not allowed"))
        return self.inner.create_writer(descriptor)


@breaks("REQ_0251", caught_by="TEST_2511")
def vague_dollar_refusal(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return VagueDollarRefusal(MqttConnector(options, codec))
