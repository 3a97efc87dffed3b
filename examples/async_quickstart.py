import asyncio
import os

from taktora_connector.adapters.aio import AsyncMqttConnector
from taktora_connector.adapters.mqtt import MqttConnectorOptions, MqttQos, MqttRouting
from taktora_connector.domain import ChannelDescriptor

broker = os.environ.get("MQTT_URL", "mqtt://localhost:1883")
options = MqttConnectorOptions.from_url(broker, client_id="async-quickstart")
every_hall = MqttRouting(filter="plant/+/temperature", qos=MqttQos.AT_LEAST_ONCE)
hall_b_topic = MqttRouting(topic="plant/hall-b/temperature", qos=MqttQos.AT_LEAST_ONCE)


async def main() -> None:
    async with AsyncMqttConnector[dict[str, float]](options) as connector:  # closes on exit
        temperatures = await connector.create_reader(ChannelDescriptor("temperatures", every_hall))
        hall_b = (await connector.create_writer(ChannelDescriptor("hall-b", hall_b_topic))).unwrap()

        # Waits (up to 5 s) for room in the outbound bridge; send_nowait() refuses instead.
        sent = (await hall_b.send({"celsius": 19.0}, timeout=5)).unwrap()
        (await sent.delivery.delivered(timeout=5)).unwrap()  # QoS 1: the broker sent PUBACK

        async for envelope in temperatures.unwrap():  # ends when the reader or connector closes
            print(envelope.routing.topic, envelope.value)  # plant/hall-b/temperature {...}
            break


asyncio.run(main())
