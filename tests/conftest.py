"""Shared fixtures. Each support module owns one kind of real component."""

import pytest

pytest_plugins = ["tests.support.seaweed", "tests.support.service"]


@pytest.fixture(autouse=True)
def _offline_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The offline commands cache converted files under $XDG_CACHE_HOME: keep the tests' out of ~/.cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
