"""A reader created before a send is subscribed before that send goes out.

Found by the asyncio tests: a reader created the moment the connector turned Up,
then a send at once, lost every message about half the time, because the sidecar
had already looked for subscription changes in that pass and published first.
"""

from __future__ import annotations

from taktora_connector.adapters.mqtt import MqttQos, MqttRouting
from taktora_connector.conformance.brokers import MosquittoBroker
from taktora_connector.domain import ChannelDescriptor, HealthKind

from .conftest import ConnectFn, unique_id


def test_reader_created_at_up_then_send_receives_everything(
    mosquitto_broker: MosquittoBroker, connect: ConnectFn
) -> None:
    missed = []
    for attempt in range(30):
        conn = connect(mosquitto_broker.port, start=False)
        health = conn.subscribe_health()
        conn.start().unwrap()
        while conn.health().kind is not HealthKind.UP:
            assert health.next(10) is not None, "never Up"
        topic = f"order/{unique_id()}"
        routing = MqttRouting(topic=topic, qos=MqttQos.AT_LEAST_ONCE)
        reader = conn.create_reader(ChannelDescriptor("in", routing)).unwrap()
        writer = conn.create_writer(ChannelDescriptor("out", routing)).unwrap()
        for n in range(5):
            writer.send(n).unwrap()
        writer.flush(10).unwrap()
        # Each message gets the full patience (a loaded machine delays delivery; only
        # a lost one waits it out), then nothing more may come.
        got = 0
        while got < 5 and reader.recv(timeout=10).unwrap() is not None:
            got += 1
        if reader.recv(timeout=0.1).unwrap() is not None:
            got += 1
        if got != 5:
            missed.append((attempt, got))
        conn.close()
    assert missed == []
