"""REQ_0253, retained messages."""

from __future__ import annotations

import dataclasses
from typing import Any

from returns.pipeline import is_successful
from returns.result import Success

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
)
from taktora_connector.ports import PayloadCodec

from .base import FilteringReader, Wrapper
from .registry import breaks


class IgnoresRetained(Wrapper):
    def create_writer(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        routing = dataclasses.replace(descriptor.routing, retained=False)
        return self.inner.create_writer(dataclasses.replace(descriptor, routing=routing))


@breaks("REQ_0253", caught_by=("TEST_0132", "TEST_2531"))
def ignores_retained(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return IgnoresRetained(MqttConnector(options, codec))


class RetainedBlindReader(FilteringReader):
    """Never yields a retained message."""

    def _keep(self, result: Any) -> Any:
        envelope = result.unwrap() if is_successful(result) else None
        if envelope is not None and envelope.routing.retained:
            return Success(None)
        return result


class SecondRetainedReaderStarved(Wrapper):
    """A later reader of a filter this connector already reads never sees the retained
    message, as a connector that does not re-subscribe would (TEST_2531)."""

    def __init__(self, inner: MqttConnector[Any]) -> None:
        super().__init__(inner)
        self.filters: set[str] = set()

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        filt = descriptor.routing.subscription_filter()
        later = filt in self.filters
        self.filters.add(filt)
        result = self.inner.create_reader(descriptor)
        return result.map(RetainedBlindReader) if later else result


@breaks("REQ_0253", caught_by="TEST_2531")
def second_retained_reader_starved(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return SecondRetainedReaderStarved(MqttConnector(options, codec))
