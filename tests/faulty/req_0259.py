"""REQ_0259, bounded bridges."""

from __future__ import annotations

import dataclasses
from typing import Any

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions
from taktora_connector.domain import ChannelDescriptor
from taktora_connector.ports import PayloadCodec

from .base import ChannelWrapper, Wrapper
from .registry import breaks


@breaks("REQ_0259", caught_by="TEST_2590")
def outbound_off_by_one(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    return MqttConnector(options.replace(outbound_capacity=options.outbound_capacity + 1), codec)


class RestartingSequenceWriter(ChannelWrapper):
    """Numbers its sends 0, 1, 0, 1, ...: a counter that wraps far too early."""

    def send(self, value: Any, *args: Any, **kwargs: Any) -> Any:
        return self.inner.send(value, *args, **kwargs).map(
            lambda sent: dataclasses.replace(sent, sequence_number=sent.sequence_number % 2)
        )


class RepeatsSequenceNumbers(Wrapper):
    def create_writer(self, descriptor: ChannelDescriptor[Any]) -> Any:
        return self.inner.create_writer(descriptor).map(RestartingSequenceWriter)


@breaks("REQ_0259", caught_by="TEST_0160")
def repeats_sequence_numbers(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Any:
    return RepeatsSequenceNumbers(MqttConnector(options, codec))
