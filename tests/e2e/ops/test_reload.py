"""SIGHUP reloads gateway.yaml's users without dropping calls: during alice's call to a sipp UAS (which
echoes her tone), carol is added to the file and the gateway gets SIGHUP; carol can log in, alice's call
goes on (her tone keeps coming back, no `ended`), and it ends normally with a BYE. A file made invalid
changes nothing (carol still logs in) and says why in the log."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
import yaml

from peers.sipp import Sipp
from peers.web_user import WebUser, WebUserError
from peers.webpeer import WebPeer
from tests.e2e.harness import ALICE_SECRET, BOB_HASH, BOB_SECRET, wait_until
from tests.e2e.ops.test_shutdown_signals import bye_call_ids, gateway_file, start_gateway


async def test_sighup_adds_a_user_while_a_call_goes_on(tmp_path: Path) -> None:
    async with Sipp(tmp_path, "uas_basic_call", calls=None, rtp_echo=True, auto_answer=True) as far_end:
        config, http_port = gateway_file(tmp_path, far_end.address)
        process = start_gateway(config, http_port, tmp_path)
        url = f"http://127.0.0.1:{http_port}"
        peer = WebPeer(1000)
        try:
            async with WebUser(url, "alice", ALICE_SECRET) as alice:
                call_id = await alice.call("2000", await peer.offer())
                await peer.accept((await alice.wait_for("connected", call_id=call_id))["sdp"])
                await wait_until(lambda: len(peer.pcm) > 8000)  # her echoed tone comes back
                with pytest.raises(WebUserError, match="unauthorized"):
                    async with WebUser(url, "carol", BOB_SECRET):
                        pass

                data = yaml.safe_load(config.read_text())
                data["users"].append({"id": "carol", "sip": "1003", "web_secret_hash": BOB_HASH})
                config.write_text(yaml.safe_dump(data))
                process.send_signal(signal.SIGHUP)
                await asyncio.sleep(1)
                async with WebUser(url, "carol", BOB_SECRET) as carol:
                    assert carol.session_id

                config.write_text("users: [{id: dave}]\n")  # invalid: nothing changes
                process.send_signal(signal.SIGHUP)
                await asyncio.sleep(1)
                async with WebUser(url, "carol", BOB_SECRET) as carol:
                    assert carol.session_id

                heard = len(peer.pcm)
                await asyncio.sleep(1)
                assert len(peer.pcm) - heard > 4000, "the call's audio stopped after the reload"
                assert not [e for e in alice.events if e["type"] == "ended"], alice.events
                await alice.request({"type": "hangup", "call_id": call_id})
                await alice.wait_for("ended", call_id=call_id)
        finally:
            await peer.close()
            process.send_signal(signal.SIGTERM)
            await asyncio.to_thread(process.wait, 10)
        log = (tmp_path / "gateway.log").read_text()
        result = await far_end.stop()
    assert len(bye_call_ids(result)) == 1, result
    assert "reload: 2 users (were 1)" in log, log[-3000:]
    assert "reload:" in log and "is invalid, nothing changed" in log, log[-3000:]
    assert "Traceback" not in log, log[-3000:]
