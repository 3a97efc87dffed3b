"""The asyncio interface of the MQTT connector: the same sidecar, awaited.

Public surface: ``AsyncMqttConnector``, ``AsyncWriter``, ``AsyncReader``,
``AsyncDelivery``, ``AsyncSendOutcome``, ``AsyncHealthEvents``.

    async with AsyncMqttConnector(options) as connector:
        reader = (await connector.create_reader(descriptor)).unwrap()
        async for envelope in reader:
            ...

Runs on asyncio (also under anyio's asyncio backend); Trio is not supported.
"""

from .channels import AsyncDelivery, AsyncReader, AsyncSendOutcome, AsyncWriter
from .connector import AsyncMqttConnector
from .health import AsyncHealthEvents

__all__ = [
    "AsyncDelivery",
    "AsyncHealthEvents",
    "AsyncMqttConnector",
    "AsyncReader",
    "AsyncSendOutcome",
    "AsyncWriter",
]
