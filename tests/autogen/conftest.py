"""AutoGen plugin tests run real AutoGen teams offline; each test starts with fresh call counters."""

import pytest
from ag_helpers import TOOL_RUNS, CountingClient


@pytest.fixture(autouse=True)
def _reset_counters():
    CountingClient.live = 0
    TOOL_RUNS.clear()
    yield
