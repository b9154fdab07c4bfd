import pytest


@pytest.fixture(autouse=True)
def _needs_services(services):
    """Every test in this folder talks to the real local services."""
