"""ICE server URLs with an IPv6 literal host reach aioice (gateway/media/webrtc/ice_urls.py, issue 68):
aiortc's parser is still where ``connection_kwargs`` finds it, a peer connection made with such a URL
gets its ICE connection pointed at the bare address, and every other URL is parsed as aiortc does."""

from __future__ import annotations

import inspect

import aiortc.rtcicetransport
import pytest
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from gateway.media.webrtc import aiortc_hooks, ice_urls


def test_aiortc_looks_the_parser_up_in_its_module() -> None:
    assert "parse_stun_turn_uri(uri)" in inspect.getsource(aiortc.rtcicetransport.connection_kwargs)


async def test_a_peer_connection_takes_turn_and_stun_servers_by_ipv6_address() -> None:
    ice_urls.accept_ipv6_literals()
    ice_urls.accept_ipv6_literals()  # idempotent: wrapped once
    assert aiortc.rtcicetransport.parse_stun_turn_uri.original.__name__ == "parse_stun_turn_uri"  # type: ignore[attr-defined]
    servers = [
        RTCIceServer(urls="stun:[2001:DB8::0:1]:19302"),
        RTCIceServer(urls="turn:[fd42:202::1]?transport=tcp", username="u", credential="p"),
    ]
    pc = RTCPeerConnection(RTCConfiguration(iceServers=servers))
    try:
        pc.addTransceiver("audio")
        connection = aiortc_hooks.ice_connection(pc)
        assert connection.stun_server == ("2001:db8::1", 19302)
        assert connection.turn_server == ("fd42:202::1", 3478)  # RFC 7065 §3's default port
        assert connection.turn_transport == "tcp" and connection.turn_username == "u"
    finally:
        await pc.close()


@pytest.mark.parametrize(
    ("uri", "parsed"),
    [
        ("turn:[::1]:3479", {"scheme": "turn", "host": "::1", "port": 3479, "transport": "udp"}),
        ("turns:[2001:db8::2]", {"scheme": "turns", "host": "2001:db8::2", "port": 5349, "transport": "tcp"}),
        ("stun:[::ffff:192.0.2.1]", {"scheme": "stun", "host": "::ffff:c000:201", "port": 3478}),
        # no brackets: aiortc's own
        ("turn:192.0.2.1:3478?transport=udp", {"scheme": "turn", "host": "192.0.2.1", "port": 3478, "transport": "udp"}),
        ("stun:stun.example.org", {"scheme": "stun", "host": "stun.example.org", "port": 3478}),
    ],
)  # fmt: skip
def test_urls_parse_as_rfc_7064_and_7065_write_them(uri: str, parsed: dict[str, object]) -> None:
    ice_urls.accept_ipv6_literals()
    assert aiortc.rtcicetransport.parse_stun_turn_uri(uri) == parsed


@pytest.mark.parametrize(
    "uri",
    ["turn:[192.0.2.1]:3478", "turn:[fe80::1%eth0]", "turn:[]", "stun:[::1]:x", "stun:[::1]?transport=udp"],
)
def test_a_malformed_bracketed_host_is_a_value_error(uri: str) -> None:
    ice_urls.accept_ipv6_literals()
    with pytest.raises(ValueError, match="malformed uri"):
        aiortc.rtcicetransport.parse_stun_turn_uri(uri)
