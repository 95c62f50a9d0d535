"""The gateway as users run it, for the benchmarks: ``python -m gateway run -c gateway.yaml`` in a process
of its own (setup_bench.py, quality_bench.py).

``start`` runs the CLI (or another runner of it, e.g. ``setup_phases.py --run``) with the shipped
gateway.yaml, its output to ``log``, and waits until it listens (``--ready-file``); ``stop`` ends it
with SIGTERM, as a service manager does, and kills it when it does not exit in time.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def start(
    workdir: Path, env: Mapping[str, str], log: Path, runner: Sequence[str] = ("-m", "gateway")
) -> asyncio.subprocess.Process:
    """The gateway's CLI on the shipped gateway.yaml, in ``workdir``, once it listens (60 s at most)."""
    ready = workdir / "gateway-ready"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, *runner, "run", "-c", str(ROOT / "gateway.yaml"), "--ready-file", str(ready),
            stdout=out, stderr=out, env=dict(env), cwd=str(workdir),
        )  # fmt: skip
    for _ in range(600):
        if ready.exists() or process.returncode is not None:
            break
        await asyncio.sleep(0.1)
    if not ready.exists():
        await stop(process)
        raise RuntimeError(f"the gateway did not start: {log.read_text()[-2000:]}")
    return process


async def stop(process: asyncio.subprocess.Process | None, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds. Idempotent."""
    if process is None or process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
