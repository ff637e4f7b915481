"""Every simulator test that checks results against an independent oracle runs both strategies."""

import pytest


@pytest.fixture(params=["fast", "reference"])
def strategy(request) -> str:
    """``EventSimulator(..., strategy=...)``: the planned kernels, and the plain numpy reference."""
    return request.param
