"""bench/vs_rtpengine.py's BoxCpu: a box's CPU seconds in nanoseconds, or in ticks when a thread ended."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from vs_rtpengine import TICKS, BoxCpu, proc_cpu, threads_cpu

BURN = 0.3  # CPU seconds the child spends between "go" and "done"

CHILD = f"""
import sys, threading, time
BURN = {BURN!r}

def burn():
    start = time.thread_time()
    while time.thread_time() - start < BURN:
        pass

print("ready", flush=True)
sys.stdin.readline()
if sys.argv[1] == "thread":  # in a thread that ends before the meter reads
    worker = threading.Thread(target=burn)
    worker.start()
    worker.join()
else:
    burn()
print("done", flush=True)
sys.stdin.readline()
"""


def measure(where: str) -> tuple[float, float]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, where], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        assert child.stdout.readline().strip() == "ready"
        meter, ticks = BoxCpu(child.pid), proc_cpu(child.pid)
        tasks = set(os.listdir(f"/proc/{child.pid}/task"))
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
        # join() returns once Python is done with the thread, a moment before the kernel lets the thread
        # go: on a loaded machine it was still in /proc/<pid>/task (its time read in nanoseconds)
        deadline = time.monotonic() + 5.0
        while set(os.listdir(f"/proc/{child.pid}/task")) != tasks and time.monotonic() < deadline:
            time.sleep(0.01)
        return meter.seconds(), proc_cpu(child.pid) - ticks
    finally:
        child.communicate("bye\n", timeout=10)


@pytest.mark.parametrize("where", ["main", "thread"])
def test_the_box_cpu_counts_what_its_threads_spent(where: str) -> None:
    seconds, ticks = measure(where)
    assert BURN * 0.9 <= seconds <= BURN + 0.15, (seconds, ticks)
    assert abs(seconds - ticks) <= 2 / TICKS + 1e-9  # the same time, to the clock tick
    in_ticks = seconds * TICKS
    if where == "main":  # every thread still there: nanoseconds, finer than a tick
        assert abs(in_ticks - round(in_ticks)) > 1e-6, seconds
    else:  # the thread that burned ended: only the ticks have its time
        assert abs(in_ticks - round(in_ticks)) < 1e-6, seconds


def test_the_threads_are_read_in_nanoseconds() -> None:
    threads = threads_cpu(os.getpid())
    assert threads and all(isinstance(ns, int) and ns >= 0 for ns in threads.values())
