"""Issue 32, item 4: a web leg whose ICE sockets cannot open (no file descriptor left, EMFILE) fails with
a WebLegError naming the reason, which the call layer answers as a failed call, never a traceback. In a
child process (its descriptor limit is lowered and every free descriptor taken before the answer)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests.conftest import REPO

SCRIPT = textwrap.dedent(
    """
    import asyncio, os, resource

    import sdp
    from gateway.media.webrtc.web_leg_state import WebLegError
    from tests.media.webrtc.test_webrtc_leg import AUDIO, PCMU, make_leg


    async def main() -> None:
        leg = make_leg([])
        offer = sdp.parse(AUDIO)
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(int(f) for f in os.listdir("/proc/self/fd")) + 1, hard))
        taken = []
        try:
            while True:  # the gaps below the limit too
                taken.append(open(os.devnull))
        except OSError:
            pass
        try:
            await leg.accept_offer(offer, PCMU)
        except WebLegError as exc:
            print("refused:", exc)
        else:
            print("answered")
        for file in taken:
            file.close()
        await leg.close()


    asyncio.run(main())
    """
)


def test_no_descriptor_for_ice_is_a_web_leg_error_not_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused: call=t cannot open ICE sockets: Too many open files" in done.stdout, (
        done.stdout,
        done.stderr,
    )
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
