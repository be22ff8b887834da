from __future__ import annotations

import camel  # noqa: F401  - these tests run in the `camel` nox session; a missing camel-ai must fail, not skip
import pytest
from camel_teams import Ledger


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()
