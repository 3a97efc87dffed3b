"""The conformance kit: Gherkin scenarios for REQ_0250..REQ_0261, runnable against any connector."""
