"""Adapters: concrete implementations of the ports (codecs, health broadcast, MQTT)."""
