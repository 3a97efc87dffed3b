import os

from taktora_connector.adapters.mqtt import (
    MqttConnector,
    MqttConnectorOptions,
    MqttQos,
    MqttRouting,
)
from taktora_connector.domain import ChannelDescriptor

broker = os.environ.get("MQTT_URL", "mqtt://localhost:1883")
options = MqttConnectorOptions.from_url(broker, client_id="quickstart")

with MqttConnector[dict[str, float]](options) as connector:  # starts, and closes (flushing) on exit
    every_hall = MqttRouting(filter="plant/+/temperature", qos=MqttQos.AT_LEAST_ONCE)
    hall_a_topic = MqttRouting(topic="plant/hall-a/temperature", qos=MqttQos.AT_LEAST_ONCE)
    temperatures = connector.create_reader(ChannelDescriptor("temperatures", every_hall)).unwrap()
    hall_a = connector.create_writer(ChannelDescriptor("hall-a", hall_a_topic)).unwrap()

    sent = hall_a.send({"celsius": 21.5}).unwrap()  # never blocks; Failure(BackPressure) when full
    sent.delivery.wait(timeout=5).unwrap()  # QoS 1: done once the broker sent PUBACK

    envelope = temperatures.recv(timeout=5).unwrap()  # None if nothing came in time
    assert envelope is not None
    print(envelope.routing.topic, envelope.value)  # plant/hall-a/temperature {'celsius': 21.5}
