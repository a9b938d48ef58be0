import pytest

from dlmpo.tau.domain import load_domain


@pytest.fixture(scope="session")
def airline(data_dir):
    return load_domain("airline", data_dir)


@pytest.fixture(scope="session")
def retail(data_dir):
    return load_domain("retail", data_dir)
