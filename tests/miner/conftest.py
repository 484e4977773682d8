"""structlog may have been configured by an in-process CLI test with a stream pytest has since
closed; give these tests a logger of their own."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _own_structlog() -> Iterator[None]:
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(io.StringIO()), cache_logger_on_first_use=False)
    yield
    structlog.reset_defaults()
