"""Stage processes share the CPU cores instead of each taking all of them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = ("import os, torch; from streampose.runtime.worker import share_cpu_threads; "
         "share_cpu_threads({n}); print(os.environ.get('OMP_NUM_THREADS'), torch.get_num_threads())")


def _run(n: int, env_extra: dict[str, str]) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | env_extra
    out = subprocess.run([sys.executable, "-c", CHECK.format(n=n)], env=env, capture_output=True, text=True,
                         check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    return out.stdout.split()


@pytest.mark.parametrize("n", [1, 3])
def test_share_sets_the_thread_count_torch_uses(n):
    assert _run(n, {}) == [str(n), str(n)]


def test_the_users_choice_wins():
    assert _run(1, {"OMP_NUM_THREADS": "2"}) == ["2", "2"]
