from __future__ import annotations

import pytest

pytest.importorskip("camel", reason="the CAMEL tests need camel-ai (nox -s camel)")

from camel_teams import Ledger  # noqa: E402


@pytest.fixture
def ledger() -> Ledger:
    return Ledger()
