"""REQ_0254, wildcard subscriptions; and the optional capability of shared ones."""

from __future__ import annotations

import time
from typing import Any

from returns.pipeline import is_successful
from returns.result import Failure, Success

from taktora_connector.adapters.mqtt import MqttConnector, MqttConnectorOptions, MqttRouting
from taktora_connector.domain import (
    ChannelDescriptor,
    ConfigurationError,
    StackError,
)
from taktora_connector.ports import PayloadCodec

from .base import ChannelWrapper, FilteringReader, Wrapper
from .registry import breaks, fair


class ExactOnlyReader(FilteringReader):
    """Delivers only messages whose topic equals the reader's filter, as a naive demux would."""

    def _keep(self, result: Any) -> Any:
        envelope = result.unwrap() if is_successful(result) else None
        wanted = self.inner.descriptor.routing.subscription_filter()
        if envelope is not None and envelope.routing.topic != wanted:
            return Success(None)
        return result


class ExactMatchOnly(Wrapper):
    """A naive demux, and (so that only REQ_0254 shows it) no shared subscriptions,
    refused as a connector without them must."""

    capabilities = frozenset[str]()

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        if descriptor.routing.share_group is not None:
            return Failure(ConfigurationError("this connector has no shared subscriptions"))
        return self.inner.create_reader(descriptor).map(ExactOnlyReader)


@breaks(
    "REQ_0254",
    caught_by=("TEST_0133", "TEST_0134", "TEST_0102", "TEST_2540", "TEST_2541"),
)
def exact_match_only(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return ExactMatchOnly(MqttConnector(options, codec))


class RefusalSwallowingReader(ChannelWrapper):
    """Turns a failed subscription into silence: recv just times out."""

    def _swallow(self, result: Any) -> Any:
        if not is_successful(result) and isinstance(result.failure(), StackError):
            return Success(None)
        return result

    def recv(self, timeout: float | None = None) -> Any:
        result = self._swallow(self.inner.recv(timeout))
        if is_successful(result) and result.unwrap() is None and timeout:
            time.sleep(timeout)  # as if nothing came
        return result

    def try_recv(self) -> Any:
        return self._swallow(self.inner.try_recv())


class SwallowsRefusedSubscription(Wrapper):
    """A subscription the broker refuses never reaches the reader (TEST_2543)."""

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        return self.inner.create_reader(descriptor).map(RefusalSwallowingReader)


@breaks("REQ_0254", caught_by="TEST_2543")
def swallows_refused_subscription(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return SwallowsRefusedSubscription(MqttConnector(options, codec))


# Shared subscriptions: an optional capability (CAP_SHARED_SUBSCRIPTIONS), checked on a
# broker that has them when claimed, and as a refusal when not.


class IgnoresShareGroup(Wrapper):
    """Subscribes the plain filter: every member gets every message."""

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        routing = descriptor.routing
        plain = MqttRouting(topic=routing.topic, filter=routing.filter, qos=routing.qos)
        return self.inner.create_reader(ChannelDescriptor(descriptor.name, plain))


@breaks("CAP_SHARED_SUBSCRIPTIONS", caught_by="TEST_2542")
def ignores_share_group(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return IgnoresShareGroup(MqttConnector(options, codec))


class ShareGroupRefusingReader(ChannelWrapper):
    """Answers every read with the StackError a broker's refusal would bring."""

    def _refused(self) -> Any:
        return Failure(StackError("share groups are not supported by this connector"))

    def recv(self, timeout: float | None = None) -> Any:
        return self._refused()

    def try_recv(self) -> Any:
        return self._refused()


class RefusesShareGroupsItself(Wrapper):
    """Fails shared readers on its own, with no refusal from the broker: the kit must
    not take that for a broker without shared subscriptions (NOT RUN), it FAILs."""

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        result = self.inner.create_reader(descriptor)
        if descriptor.routing.share_group is None:
            return result
        return result.map(ShareGroupRefusingReader)


@breaks("CAP_SHARED_SUBSCRIPTIONS", caught_by="TEST_2542")
def refuses_share_groups_itself(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return RefusesShareGroupsItself(MqttConnector(options, codec))


class WithoutSharedSubscriptions(Wrapper):
    """Claims no optional capability and refuses a share group, as the contract asks of
    a connector without them: it must PASS every requirement (issue 17 point 6)."""

    capabilities = frozenset[str]()

    def create_reader(self, descriptor: ChannelDescriptor[MqttRouting]) -> Any:
        if descriptor.routing.share_group is not None:
            return Failure(
                ConfigurationError(
                    f"reader {descriptor.name!r} asks for share group "
                    f"{descriptor.routing.share_group!r}: this connector has no shared "
                    "subscriptions (an MQTT 5 feature); use a plain filter"
                )
            )
        return self.inner.create_reader(descriptor)


@fair("CAP_SHARED_SUBSCRIPTIONS")
def without_shared_subscriptions(
    options: MqttConnectorOptions, codec: PayloadCodec[Any]
) -> Wrapper:
    return WithoutSharedSubscriptions(MqttConnector(options, codec))


class SilentlyPlainShareGroup(IgnoresShareGroup):
    """Claims nothing, yet takes a share group and subscribes the plain filter: users
    would be misled (every member gets every message)."""

    capabilities = frozenset[str]()


@breaks("CAP_SHARED_SUBSCRIPTIONS", caught_by="TEST_2544")
def silently_plain_share_group(options: MqttConnectorOptions, codec: PayloadCodec[Any]) -> Wrapper:
    return SilentlyPlainShareGroup(MqttConnector(options, codec))
