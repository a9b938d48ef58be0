import pytest

from dlmpo.dlm import load_dlm


@pytest.fixture(scope="session", params=["dream", "llada", "mlm"])
def tiny(request):
    return load_dlm(f"tiny-random:{request.param}", device="cpu")


@pytest.fixture(scope="session")
def tiny_dream():
    return load_dlm("tiny-random:dream", device="cpu")
