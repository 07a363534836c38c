"""Shared test configuration: async tests run on both anyio backends."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]  # the conformance suites are run on broken providers too


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# The third-party plugin under fixtures/ runs its own tests from its installed wheel
# (tests/integration), not from this checkout.
collect_ignore = ["fixtures"]
