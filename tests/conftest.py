"""Shared fixtures: every path of the public API, built fresh per test module."""

from __future__ import annotations

import pytest
import torch

from support.paths import PATH_IDS, all_paths

# Oracle tests run many tiny tensor ops: one thread avoids OpenMP start-up and contention.
torch.set_num_threads(1)


@pytest.fixture(params=list(range(len(PATH_IDS))), ids=PATH_IDS)
def path(request):
    return all_paths()[request.param]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module of tiny networks (fastest, above all on a busy CPU);
    the previous count is restored after it. Use with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _keep_thread_count():
    """An in-process ``interpolant`` command sets torch's thread count for its own work (see
    ``workflows.set_threads``); put it back after each test so that no later test inherits it."""
    threads = torch.get_num_threads()
    yield
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
