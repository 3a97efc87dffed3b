"""Benchmarks: the connector against raw paho-mqtt and aiomqtt (``make bench``)."""
