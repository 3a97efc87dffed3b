"""Options, routing and descriptor validation, and from_url."""

from __future__ import annotations

import dataclasses
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taktora_connector.adapters.mqtt import (
    Credentials,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
    TlsOptions,
)
from taktora_connector.domain import ChannelDescriptor, ConfigurationError


def test_defaults_match_the_public_surface() -> None:
    options = MqttConnectorOptions()
    assert (options.host, options.port, options.keep_alive) == ("localhost", 1883, 60.0)
    assert options.client_id.startswith("taktora") and len(options.client_id) == 23  # random
    assert options.clean_session is True
    assert (options.outbound_capacity, options.inbound_capacity) == (64, 64)
    assert options.inbound_drop_threshold == 1
    assert (options.reconnect_initial_backoff, options.reconnect_max_backoff) == (0.1, 30.0)
    assert options.reconnect_attempt_ceiling == 10
    assert (options.max_inflight, options.connect_timeout) == (100, 10.0)
    assert options.credentials is None and options.tls is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"port": 0}, "port is 0; it must be between 1 and 65535"),
        ({"port": 70000}, "between 1 and 65535"),
        ({"port": "1883"}, "port must be an int"),
        ({"host": ""}, "host must be a non-empty"),
        ({"host": "a b"}, "without spaces"),
        ({"client_id": ""}, "client_id must be a non-empty"),
        ({"keep_alive": -1}, "keep_alive is -1"),
        ({"keep_alive": 1.5}, "whole seconds"),
        ({"keep_alive": 70000}, "whole seconds"),
        ({"outbound_capacity": 0}, "outbound_capacity is 0"),
        ({"inbound_capacity": -3}, "inbound_capacity is -3"),
        ({"inbound_drop_threshold": 0}, "inbound_drop_threshold is 0"),
        ({"reconnect_initial_backoff": 0}, "reconnect_initial_backoff is 0"),
        ({"reconnect_max_backoff": float("inf")}, "finite number"),
        ({"reconnect_initial_backoff": 5.0, "reconnect_max_backoff": 1.0}, "must not be below"),
        ({"reconnect_attempt_ceiling": -1}, "reconnect_attempt_ceiling is -1"),
        ({"max_inflight": 0}, "max_inflight is 0"),
        ({"connect_timeout": 0}, "connect_timeout is 0"),
        ({"clean_session": "yes"}, "clean_session must be True or False"),
        ({"credentials": ("u", "p")}, "credentials must be a Credentials"),
        ({"servers": "h1:1883"}, "servers must be a list of (host, port) pairs"),
        ({"servers": [("h1",)]}, "servers[0] is ('h1',); each server is a (host, port) pair"),
        ({"servers": [("h1", 1), ("h2", 0)]}, "servers[1] port is 0; it must be between 1"),
        ({"servers": [("", 1)]}, "servers[0] host must be a non-empty host name"),
        ({"servers": [("h1", 1), ("h1", 1)]}, "servers lists h1:1 twice"),
        ({"servers": [("h1", 1)], "host": "h2"}, "give servers alone"),
    ],
)
def test_invalid_options_say_what_is_allowed(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        MqttConnectorOptions(**changes)  # type: ignore[arg-type]
    assert issubclass(ConfigurationError, ValueError)


def test_options_are_frozen_and_replace_validates() -> None:
    options = MqttConnectorOptions()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.port = 1  # type: ignore[misc]
    assert dataclasses.replace(options, port=1884).port == 1884
    with pytest.raises(ConfigurationError):
        options.replace(port=-1)


def test_password_never_in_repr() -> None:
    options = MqttConnectorOptions(credentials=Credentials("alice", "s3cr3t-pw"))
    assert "s3cr3t-pw" not in repr(options)
    assert "s3cr3t-pw" not in repr(options.credentials)
    assert "alice" in repr(options)


@pytest.mark.parametrize(
    ("url", "host", "port", "tls", "user"),
    [
        ("mqtt://broker", "broker", 1883, False, None),
        ("mqtt://broker:1884", "broker", 1884, False, None),
        ("mqtts://broker", "broker", 8883, True, None),
        ("mqtt://al%40ice:p%3Ass@10.0.0.1:2000", "10.0.0.1", 2000, False, "al@ice"),
        ("mqtt://[::1]:1883", "::1", 1883, False, None),
    ],
)
def test_from_url(url: str, host: str, port: int, tls: bool, user: str | None) -> None:
    options = MqttConnectorOptions.from_url(url, client_id="x")
    assert (options.host, options.port, options.tls is not None) == (host, port, tls)
    assert options.client_id == "x"
    if user is None:
        assert options.credentials is None
    else:
        assert options.credentials == Credentials(user, "p:ss")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://broker", "has scheme 'http'"),
        ("mqtt://", "names no host"),
        ("mqtt://broker:99999", "malformed"),
        ("mqtt://broker/path", "path, query or fragment"),
        ("mqtt://u:topsecret@broker/x", "u:***@broker"),
        ("broker:1883", "scheme"),
    ],
)
def test_malformed_urls(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        MqttConnectorOptions.from_url(url)
    assert "topsecret" not in str(caught.value)


def test_from_url_refuses_unknown_overrides() -> None:
    with pytest.raises(ConfigurationError, match="unknown option"):
        MqttConnectorOptions.from_url("mqtt://b", colour="red")


@given(
    st.from_regex(r"[a-z][a-z0-9.-]{0,20}", fullmatch=True),
    st.integers(1, 65535),
    st.text(
        st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
        min_size=1,
        max_size=10,
    ),
    st.text(st.characters(exclude_categories=["Cs"]), max_size=10),
)
def test_from_url_round_trips_credentials(host: str, port: int, user: str, password: str) -> None:
    from urllib.parse import quote

    url = f"mqtt://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"
    options = MqttConnectorOptions.from_url(url)
    assert (options.host, options.port) == (host, port)
    assert options.credentials == Credentials(user, password)


def test_qos2_is_refused_clearly() -> None:
    with pytest.raises(ConfigurationError, match=r"QoS 2 .* not supported yet"):
        MqttRouting(topic="a", qos=2)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="AT_MOST_ONCE"):
        MqttRouting(topic="a", qos=True)  # type: ignore[arg-type]
    assert MqttRouting(topic="a", qos=1).qos is MqttQos.AT_LEAST_ONCE  # type: ignore[arg-type]


def test_routing_needs_topic_or_filter_and_validates_both() -> None:
    with pytest.raises(ConfigurationError, match="needs a topic"):
        MqttRouting()
    with pytest.raises(ConfigurationError, match="wildcard"):
        MqttRouting(topic="a/+")
    with pytest.raises(ConfigurationError, match="'#' must be the last level"):
        MqttRouting(filter="a/#/b")
    with pytest.raises(ConfigurationError, match="retained must be True or False"):
        MqttRouting(topic="a", retained=1)  # type: ignore[arg-type]
    both = MqttRouting(topic="plant/A/t", filter="plant/+/t")
    assert both.subscription_filter() == "plant/+/t"
    assert MqttRouting(topic="x").subscription_filter() == "x"


def test_descriptor_rules() -> None:
    routing = MqttRouting(topic="a")
    with pytest.raises(ConfigurationError, match="non-empty"):
        ChannelDescriptor("", routing)
    with pytest.raises(ConfigurationError, match="between 1 and 268435455"):
        ChannelDescriptor("c", routing, max_payload_size=0)
    with pytest.raises(ConfigurationError, match="between 1 and 268435455"):
        ChannelDescriptor("c", routing, max_payload_size=268_435_456)
    assert ChannelDescriptor("c", routing).max_payload_size == 1_048_576


def test_tls_options_fail_early_on_bad_ca(tmp_path: object) -> None:
    with pytest.raises(ConfigurationError, match="TLS CA could not be loaded"):
        TlsOptions(ca_pem="not a certificate")
    with pytest.raises(ConfigurationError, match="not a readable file"):
        TlsOptions(ca_file="/nonexistent/ca.pem")
    context = TlsOptions().context()
    import ssl

    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname


def test_a_read_only_routing_cannot_be_retained() -> None:
    """retained=True on a filter-only routing was accepted and silently meant nothing."""
    with pytest.raises(ConfigurationError, match="retained=True is a flag for publishing"):
        MqttRouting(filter="plant/+/temperature", retained=True)
    both = MqttRouting(topic="plant/a/temperature", filter="plant/+/temperature", retained=True)
    assert both.retained  # with a topic to publish to, it means something


def test_several_servers_keep_host_and_port_as_the_first() -> None:
    options = MqttConnectorOptions(servers=[("h1", 1), ("h2", 2)])
    assert options.servers == (("h1", 1), ("h2", 2))  # a tuple, whatever was given
    assert (options.host, options.port) == ("h1", 1)
    assert options.broker_url() == "mqtt://h1:1,h2:2"
    assert options.replace(servers=[("h3", 3)]).server_list == (("h3", 3),)
    with pytest.raises(ConfigurationError, match=re.escape("replace servers=[(host, port), ...]")):
        options.replace(port=9)
    one = MqttConnectorOptions(servers=[("h1", 1)])
    assert one.replace(port=9).server_list == (("h1", 9),)
    assert MqttConnectorOptions(port=9).server_list == (("localhost", 9),)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mqtt://h1,", "server '' is not host[:port]"),
        ("mqtt://h1,h2:x", "server 'h2:x' is malformed"),
        ("mqtt://h1,h2/path", "has a path, query or fragment"),
        ("mqtt://u:secret@h1,h1", "servers lists h1:1883 twice"),
        ("mqtt://h1:1883,u:secret@h2", "credentials after a comma"),
        ("mqtt://a:secret@h1,u:p@h2", "credentials after a comma"),
    ],
)
def test_bad_server_lists_in_a_url_say_which_server(url: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)) as caught:
        MqttConnectorOptions.from_url(url)
    assert "secret" not in str(caught.value)
