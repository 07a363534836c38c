"""The ``omnivoice`` pytest plugin, registered through the ``pytest11`` entry point.

It loads whenever pytest runs where omnivoice-core is installed, so it stays small: a
marker, and fixtures for tests of omnivoice applications and plugins.
"""

from __future__ import annotations

from typing import Any

import pytest

from omnivoice.plugins import PLUGINS_ENV_VAR, Registry
from omnivoice.testing.carrier import FakeCarrierSocket, FakeClock

__all__ = ["fake_carrier_socket", "fake_clock", "omnivoice_registry"]


def pytest_configure(config: Any) -> None:
    config.addinivalue_line(
        "markers", "omnivoice_conformance: a test of an omnivoice conformance suite"
    )


@pytest.fixture
def omnivoice_registry() -> Registry:
    """A plugin registry of the core's built-in plugins only (no installed plugin leaks in)."""
    return Registry.load(environ={PLUGINS_ENV_VAR: ""})


@pytest.fixture
def fake_carrier_socket() -> FakeCarrierSocket:
    """An in-memory carrier media socket for :func:`omnivoice.gateway.call.run_call`."""
    return FakeCarrierSocket()


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock that only the test moves."""
    return FakeClock()
