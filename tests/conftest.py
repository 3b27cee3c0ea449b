"""Every test runs with one intra-op thread: results of training do not depend on the machine's
core count, and two pytest-xdist workers on two cores do not oversubscribe them (a Group-Net
training step took four times as long with two threads a worker)."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    import torch

    torch.set_num_threads(1)
    yield
