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


def pytest_collection_modifyitems(items):
    """Tests marked ``long`` run first (the order is otherwise kept): pytest-xdist's work
    stealing then balances the short ones at the end, instead of one worker finishing a long
    test alone while the other waits (about a minute of a CI run)."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)
