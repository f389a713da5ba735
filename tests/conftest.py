"""Shared fixtures. Each support module owns one kind of real component."""

pytest_plugins = ["tests.support.seaweed", "tests.support.service"]
