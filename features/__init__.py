"""Gherkin feature files of the conformance kit (package data)."""
