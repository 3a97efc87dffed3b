"""The kit's brokers start on ports they pick themselves, even when another process
takes the picked port between the pick and the bind (a parallel run did, once)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from taktora_connector.conformance import brokers
from taktora_connector.conformance.brokers import EmbeddedBroker, MosquittoBroker

from .conftest import require_mosquitto


@pytest.fixture
def taken_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """The first port ``free_port`` picks is already listened on by someone else."""
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    port = squatter.getsockname()[1]
    real = brokers.free_port
    picks = iter([port])
    monkeypatch.setattr(brokers, "free_port", lambda: next(picks, None) or real())
    yield port
    squatter.close()


def test_the_embedded_broker_picks_another_port_when_its_pick_was_taken(taken_port: int) -> None:
    broker = EmbeddedBroker().start()
    try:
        assert broker.port != taken_port
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
            pass
    finally:
        broker.close()


def test_mosquitto_picks_another_port_when_its_pick_was_taken(taken_port: int) -> None:
    require_mosquitto()
    broker = MosquittoBroker().start()
    try:
        assert broker.port != taken_port
        assert broker._process is not None and broker._process.poll() is None  # still running
        with socket.create_connection(("127.0.0.1", broker.port), timeout=5):
            pass
    finally:
        broker.close()


def test_a_port_given_by_the_caller_is_not_changed(taken_port: int) -> None:
    with pytest.raises(Exception, match=r"in use|address"):
        EmbeddedBroker(port=taken_port).start()
