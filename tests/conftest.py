import os
from pathlib import Path

import pytest

# the repository's sibling shared/data, or DLMPO_DATA_DIR (README of shared/data: formats, licences)
SHARED_DATA = Path(os.environ.get("DLMPO_DATA_DIR") or Path(__file__).resolve().parents[1].parent / "shared" / "data")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config, items):
    import torch

    skip_slow = pytest.mark.skip(reason="slow: pass --runslow")
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("slow") and not config.getoption("--runslow"):
            item.add_marker(skip_slow)
        if item.get_closest_marker("gpu") and not torch.cuda.is_available():
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (SHARED_DATA / "sst2").is_dir():  # a missing data set fails loudly, never skips
        pytest.fail(f"The task data is not at {SHARED_DATA} (expected sst2/, sst5/, mrpc/, snli/, tau/): "
                    "put the shared data there or set DLMPO_DATA_DIR.", pytrace=False)
    return SHARED_DATA
