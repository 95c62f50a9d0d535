"""gateway.config: loading, every error path, environment overrides, secrets, and the `check` command."""

from __future__ import annotations

import argparse
import dataclasses
import getpass
import io
import ipaddress
import logging
import textwrap
from pathlib import Path

import pytest

from gateway import cli_check
from gateway.config import (
    Codec,
    Config,
    ConfigError,
    ConfigFileError,
    DtmfMode,
    HostPort,
    IceServer,
    InvalidValue,
    LogFormat,
    LogLevel,
    RtpPorts,
    Secret,
    SecretSource,
    SipListen,
    SipSection,
    Transport,
    WebAuthMode,
)
from gateway.config.loader import iter_secrets, load_config, load_config_text
from gateway.identity import DialPattern, SipAddress, verify_secret

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "config"
SHIPPED = ROOT / "gateway.yaml"
FULL_ENV = {
    "TURN_CREDENTIAL": "turn-pw-123",
    "ALICE_PBX_PASSWORD": "alice-pbx-pw",
    "ALICE_TOKEN": "alice-tok",
}
# A valid user block for snippets that need one (mode: secret needs a hash).
USER = '{id: u1, sip: "sip:1001@pbx.example.org", web_secret_hash: "' + (
    "pbkdf2_sha256$1000$c2FsdHNhbHRzYWx0$cpxGlRqW97B2SMRN7HYxEiFmXQmAZxayTuU0Jp2Nkyw=" + '"}'
)


def load(text: str, env: dict[str, str] | None = None, base_dir: Path = DATA) -> Config:
    return load_config_text(textwrap.dedent(text), env or {}, base_dir=base_dir)


def errors_of(text: str, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, env)
    return list(info.value.errors)


# --- the shipped file and the fixture files ---------------------------------------------------------


def test_shipped_gateway_yaml_loads_with_empty_environment() -> None:
    config = load_config(SHIPPED, {})
    assert [u.id for u in config.users] == ["alice", "bob"]
    assert config.ice.gateway == ()
    assert config.web_auth.session_secret is None
    assert config.http.host == "127.0.0.1"
    assert all(listen.host == "127.0.0.1" for listen in config.sip.listen)
    assert config.pbx.address == HostPort("127.0.0.1", 5070)
    # The documented demo secrets are the ones hashed in the file.
    alice, bob = config.users
    assert alice.web_secret_hash is not None and verify_secret("alice-demo", alice.web_secret_hash)
    assert bob.web_secret_hash is not None and verify_secret("bob-demo", bob.web_secret_hash)
    assert not verify_secret("bob-demo", alice.web_secret_hash)


def test_shipped_gateway_yaml_takes_session_secret_from_its_variable() -> None:
    config = load_config(SHIPPED, {"GATEWAY_WEB_SESSION_SECRET": "s3cr3t-key-of-24-bytes"})
    secret = config.web_auth.session_secret
    assert secret is not None and secret.reveal() == "s3cr3t-key-of-24-bytes"
    assert repr(secret) == "Secret(env:GATEWAY_WEB_SESSION_SECRET)"


def test_empty_file_gives_defaults() -> None:
    config = load("")
    assert config == Config()
    assert config.sip.listen == (SipListen(Transport.UDP), SipListen(Transport.TCP))
    assert config.media.rtp_ports == RtpPorts(10000, 20000)
    assert config.codecs.sip == (Codec.PCMU, Codec.PCMA, Codec.G722, Codec.OPUS)
    assert config.codecs.webrtc[0] is Codec.OPUS
    assert config.ice.browser == () and config.ice.gateway == ()
    assert config.logging.level is LogLevel.INFO and config.logging.level == "INFO"


def test_minimal_file() -> None:
    config = load_config(DATA / "minimal.yaml", {})
    assert config.pbx.effective_domain == "pbx.example.org"
    assert config.users[0].sip == "1003"
    hashed = config.users[0].web_secret_hash
    assert hashed is not None and hashed.verify("carol-secret") and not hashed.verify("carol")


def test_full_file_reads_every_key() -> None:
    config = load_config(DATA / "full.yaml", FULL_ENV)
    sip = config.sip
    assert sip.listen == (SipListen(Transport.UDP, "0.0.0.0", 5080), SipListen(Transport.TCP, "::", 5081))
    assert sip.public_address == HostPort("sip.example.org", 5080)
    assert sip.dtmf_mode is DtmfMode.INFO
    assert sip.trusted_sources == (
        ipaddress.ip_network("192.0.2.10"),
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert sip.user_agent == "test-gw"
    assert config.media.public_address == (ipaddress.ip_address("203.0.113.5"),)
    assert config.media.rtp_ports.pairs == 500
    assert config.media.inactivity_timeout == 4.5
    assert config.codecs.sip == (Codec.PCMA, Codec.G722)
    assert config.codecs.webrtc == (Codec.OPUS, Codec.PCMU)
    assert config.codecs.telephone_event is False
    stun, turn = config.ice.browser
    assert stun.urls == ("stun:stun.example.org:3478",) and stun.credential is None
    assert turn.username == "gw" and turn.credential is not None and turn.credential.reveal() == "turn-pw-123"
    assert config.ice.gateway[0].urls == ("stun:[2001:db8::1]:3478",)
    pbx = config.pbx
    assert (pbx.address, pbx.transport, pbx.outbound_proxy) == (
        HostPort("pbx.example.org", 5062),
        Transport.TCP,
        HostPort("2001:db8::5", 5060),
    )
    assert str(pbx.outbound_proxy) == "[2001:db8::5]:5060"
    assert (pbx.register, pbx.register_expiry, pbx.domain, pbx.realm) == (
        True,
        600,
        "example.org",
        "asterisk",
    )
    assert pbx.effective_domain == "example.org"
    assert (config.http.host, config.http.port) == ("0.0.0.0", 8443)
    auth = config.web_auth
    assert auth.mode is WebAuthMode.TOKEN and auth.token_ttl == 3600
    assert auth.session_secret is not None and auth.session_secret.reveal() == "file-session-key"
    alice, bob = config.users
    assert alice.display_name == "Alice Example"
    assert alice.pbx_auth is not None and alice.pbx_auth.password.reveal() == "alice-pbx-pw"
    assert alice.allow_outbound == (
        DialPattern("2xxx"),
        DialPattern("0[1-9]x."),
        SipAddress("sip", "partner", "partner.example.net"),
    )
    assert alice.aliases == ("alice", "+4930123456", "sip:support@example.org")
    assert alice.inbound_patterns == (DialPattern("10[0-4]x"),)
    assert alice.web_token is not None and alice.web_token.reveal() == "alice-tok"
    assert bob.web_token is not None and bob.web_token.source is SecretSource.INLINE
    assert (config.logging.level, config.logging.format) == (LogLevel.DEBUG, LogFormat.JSON)


def test_config_is_frozen() -> None:
    config = load("")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.http.port = 1  # type: ignore[misc]


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match=r"does-not-exist\.yaml: no such file"):
        load_config(DATA / "does-not-exist.yaml", {})
    binary = tmp_path / "gateway.yaml"
    binary.write_bytes(b"sip:\n  listen: \xff\xfe\n")
    with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 15\)"):
        load_config(binary, {})
    (tmp_path / "secret.bin").write_bytes(b"\x80\x81")
    binary.write_text(
        "ice:\n  browser:\n  - {urls: ['turn:b.example'], username: u, credential: {file: secret.bin}}\n"
    )
    with pytest.raises(ConfigError, match=r"secret file .* is not UTF-8 text"):
        load_config(binary, {})
    with pytest.raises(ConfigError, match="not valid YAML"):
        load("sip: [unclosed\n")
    with pytest.raises(ConfigError, match="expected a mapping of sections"):
        load("- a list\n")


def test_duplicate_yaml_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="duplicate key 'port'"):
        load("http:\n  port: 1\n  port: 2\n")


# --- unknown keys and bad values: exact messages ----------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sipp: {}", "sipp: unknown key"),
        ("sip: {listen: [{transport: udp, prot: 5060}]}", "sip.listen[0].prot: unknown key"),
        ("sip: {listen: [{}, {port: 1, colour: red}]}", "sip.listen[1].colour: unknown key"),
        ("media: {rtp_ports: {begin: 10000}}", "media.rtp_ports.begin: unknown key"),
        ("ice: {browser: [{urls: ['stun:a.example'], user: x}]}", "ice.browser[0].user: unknown key"),
        ("web_auth: {session_secret: {envv: X}}", "web_auth.session_secret.envv: unknown key"),
        (
            f"users: [{USER[:-1]}, pbx_auth: {{username: a, pasword: x}}}}]",
            "users[0].pbx_auth.pasword: unknown key",
        ),
    ],
)
def test_unknown_key_names_full_path(text: str, expected: str) -> None:
    assert expected in errors_of(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sip: {listen: [{port: abc}]}", "sip.listen[0].port: expected an integer 1-65535, got 'abc'"),
        ("sip: {listen: [{port: 0}]}", "sip.listen[0].port: expected an integer 1-65535, got 0"),
        ("sip: {listen: [{port: 70000}]}", "sip.listen[0].port: expected an integer 1-65535, got 70000"),
        ("sip: {listen: [{port: true}]}", "sip.listen[0].port: expected an integer 1-65535, got True"),
        ("sip: {listen: [{port: 5060.5}]}", "sip.listen[0].port: expected an integer 1-65535, got 5060.5"),
        (
            "sip: {listen: [{host: 'not a host'}]}",
            "sip.listen[0].host: expected a host name or IP address, got 'not a host'",
        ),
        (
            "sip: {listen: [{transport: sctp}]}",
            "sip.listen[0].transport: expected one of udp, tcp, tls, got 'sctp'",
        ),
        (
            "sip: {listen: [{transport: tls}]}",
            "sip.listen[0]: a tls listen address needs sip.tls.certificate and private_key",
        ),
        ("sip: {tls: {certificate: a.pem}}", "sip.tls.private_key: certificate and private_key go together"),
        (
            "sip: {listen: [{transport: WS}]}",
            "sip.listen[0].transport: transport 'ws' is reserved for a later release; use udp, tcp or tls for now",
        ),
        ("sip: {listen: []}", "sip.listen: at least one listen address is needed"),
        ("sip: {listen: {port: 1}}", "sip.listen: expected a list, got {'port': 1}"),
        ("sip: 5", "sip: expected a mapping of keys, got 5"),
        (
            "sip: {public_address: 'a.example:x'}",
            "sip.public_address: expected host[:port] with a numeric port, got 'a.example:x'",
        ),
        (
            "sip: {public_address: 'a.example:0'}",
            "sip.public_address: expected a port 1-65535, got 0 (in 'a.example:0')",
        ),
        ("sip: {dtmf_mode: inband}", "sip.dtmf_mode: expected one of rfc4733, info, got 'inband'"),
        (
            "sip: {trusted_sources: [10.0.0.1/8]}",
            (
                "sip.trusted_sources[0]: expected an IP address or CIDR network, "
                "got '10.0.0.1/8' (10.0.0.1/8 has host bits set)"
            ),
        ),
        (
            "sip: {trusted_sources: [10.0.0.0/33]}",
            "sip.trusted_sources[0]: expected an IP address or CIDR network, got '10.0.0.0/33'",
        ),
        (
            "sip: {trusted_sources: [12]}",
            "sip.trusted_sources[0]: expected an IP address or CIDR network, got 12",
        ),
        (
            "media: {public_address: gw.example.org}",
            "media.public_address: expected an IP address (not a host name), got 'gw.example.org'",
        ),
        (
            "media: {rtp_ports: {start: 10001}}",
            "media.rtp_ports.start: must be even (RTP takes the even port of each pair), got 10001",
        ),
        (
            "media: {rtp_ports: {start: 1000, end: 2000}}",
            "media.rtp_ports.start: must be 1024 or above (no privileged ports), got 1000",
        ),
        (
            "media: {rtp_ports: {start: 20000, end: 20000}}",
            "media.rtp_ports.end: must be above start (20000), got 20000",
        ),
        (
            "media: {rtp_ports: {start: 20000, end: 20009}}",
            "media.rtp_ports: range 20000-20009 holds 5 RTP/RTCP pairs; at least 10 needed",
        ),
        ("media: {inactivity_timeout: 0}", "media.inactivity_timeout: expected a number 0.5-3600.0, got 0"),
        (
            "media: {inactivity_timeout: soon}",
            "media.inactivity_timeout: expected a number 0.5-3600.0, got 'soon'",
        ),
        ("media: {opus_complexity: 11}", "media.opus_complexity: expected an integer 0-10, got 11"),
        ("media: {opus_complexity: high}", "media.opus_complexity: expected an integer 0-10, got 'high'"),
        ("media: {opus_inband_fec: 2}", "media.opus_inband_fec: expected auto, on or off, got 2"),
        ("media: {opus_inband_fec: maybe}", "media.opus_inband_fec: expected auto, on or off, got 'maybe'"),
        ("media: {opus_usedtx: 2}", "media.opus_usedtx: expected true or false, got 2"),
        (
            "codecs: {sip: [PCMU, speex]}",
            "codecs.sip[1]: expected one of PCMU, PCMA, G722, G729, opus, got 'speex'",
        ),
        ("codecs: {webrtc: [opus, OPUS]}", "codecs.webrtc[1]: codec 'opus' listed twice"),
        ("codecs: {sip: []}", "codecs.sip: at least one codec is needed"),
        ("codecs: {video: [VP8, AV1]}", "codecs.video[1]: expected one of H264, VP8, VP9, got 'AV1'"),
        ("codecs: {video: [vp8, VP8]}", "codecs.video[1]: codec 'VP8' listed twice"),
        ("codecs: {telephone_event: maybe}", "codecs.telephone_event: expected true or false, got 'maybe'"),
        (
            "ice: {browser: [{urls: ['http://x.example']}]}",
            (
                "ice.browser[0].urls[0]: expected a URL with scheme stun:, "
                "stuns:, turn: or turns:, got 'http://x.example'"
            ),
        ),
        (
            "ice: {gateway: [{urls: ['stun:']}]}",
            (
                "ice.gateway[0].urls[0]: malformed ICE server URL 'stun:' "
                "(expected scheme:host[:port][?transport=udp|tcp])"
            ),
        ),
        (
            "ice: {browser: [{urls: ['stun:a.example?transport=udp']}]}",
            (
                "ice.browser[0].urls[0]: '?transport=' is only defined for "
                "turn:/turns: URLs, got 'stun:a.example?transport=udp'"
            ),
        ),
        (
            "ice: {browser: [{urls: ['turn:t.example']}]}",
            "ice.browser[0].username: required for turn:/turns: URLs",
        ),
        (
            "ice: {browser: [{urls: ['turn:t.example'], username: u}]}",
            "ice.browser[0].credential: required for turn:/turns: URLs",
        ),
        ("ice: {browser: [{urls: []}]}", "ice.browser[0].urls: at least one URL is needed"),
        ("ice: {browser: [{username: u}]}", "ice.browser[0].urls: required"),
        ("pbx: {register: true}", "pbx.register: registration needs pbx.address"),
        ("pbx: {register_expiry: 10}", "pbx.register_expiry: expected an integer 60-86400, got 10"),
        (
            "pbx: {transport: tls}",
            "pbx.transport: tls needs a sip.listen address with transport tls (and sip.tls certificates)",
        ),
        ("pbx: {domain: 'bad domain'}", "pbx.domain: expected a host name or IP address, got 'bad domain'"),
        ("http: {port: http}", "http.port: expected an integer 1-65535, got 'http'"),
        ("web_auth: {mode: password}", "web_auth.mode: expected one of secret, token, got 'password'"),
        ("web_auth: {token_ttl: 5}", "web_auth.token_ttl: expected an integer 60-2592000, got 5"),
        (
            "logging: {level: loud}",
            "logging.level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'",
        ),
        ("logging: {format: xml}", "logging.format: expected one of text, json, got 'xml'"),
        ("users: [{sip: '1001'}]", "users[0].id: required"),
        (
            "users: [{id: Alice, sip: '1001'}]",
            (
                "users[0].id: expected a user id (lower-case letters, "
                "digits, '.', '_', '-'; up to 64), got 'Alice'"
            ),
        ),
        (
            "users: [{id: a, sip: 'sip:@x'}]",
            "users[0].sip: bad SIP URI: empty URI user in 'sip:@x'",
        ),
        (
            "users: [{id: a, sip: 'sip:pbx.example.org'}]",
            "users[0].sip: SIP URI 'sip:pbx.example.org' has no user part",
        ),
        (
            "users: [{id: a, sip: 'tel:+1555'}]",
            (
                "users[0].sip: expected a SIP URI (sip:user@host) or an "
                "extension such as '1001', got 'tel:+1555'"
            ),
        ),
        (
            "users: [{id: a, sip: '1', allow_outbound: ['2x[x']}]",
            "users[0].allow_outbound[0]: bad dial pattern '2x[x': unclosed '['",
        ),
        (
            "users: [{id: a, sip: '1', inbound_patterns: ['1.2']}]",
            "users[0].inbound_patterns[0]: bad dial pattern '1.2': '.' is only allowed at the end",
        ),
        (
            "users: [{id: a, sip: '1', inbound_patterns: ['[]']}]",
            "users[0].inbound_patterns[0]: bad dial pattern '[]': empty class '[]'",
        ),
        (
            "users: [{id: a, sip: '1', inbound_patterns: ['[5-1]']}]",
            "users[0].inbound_patterns[0]: bad dial pattern '[5-1]': bad range '5-1' in class '[5-1]'",
        ),
        (
            "users: [{id: a, sip: '1', web_secret_hash: 'md5$abc'}]",
            (
                "users[0].web_secret_hash: not a hash: it must start with one of scrypt, pbkdf2_sha256 and "
                "a '$' (the value is not shown: it may be a plain secret); make one with "
                "`sip-webrtc-gateway hash-secret`"
            ),
        ),
        (
            "users: [{id: a, sip: '1', web_secret_hash: 'scrypt$1$2'}]",
            "users[0].web_secret_hash: malformed scrypt hash (expected 6 '$'-fields)",
        ),
        (
            "users: [{id: a, sip: '1', web_token: 1234}]",
            "users[0].web_token: expected a secret: {env: NAME}, {file: PATH} or a string, got an integer",
        ),
        ("users: {alice: {}}", "users: expected a list, got {'alice': {}}"),
    ],
)
def test_bad_value_names_key_and_quotes_value(text: str, expected: str) -> None:
    errors = errors_of(text)
    assert expected in errors, errors


def test_all_errors_are_collected() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(DATA / "many-errors.yaml", {"GATEWAY_HTTP__PORTT": "1"})
    assert set(info.value.errors) == {
        "GATEWAY_HTTP__PORTT: unknown setting 'http.portt'",
        "sip.listen[0].port: expected an integer 1-65535, got 'abc'",
        "sip.listen[1].transport: transport 'ws' is reserved for a later release; use udp, tcp or tls for now",
        "sip.listen[2].prot: unknown key",
        (
            "sip.trusted_sources[0]: expected an IP address or CIDR network, "
            "got '10.0.0.1/8' (10.0.0.1/8 has host bits set)"
        ),
        "media.rtp_ports.start: must be even (RTP takes the even port of each pair), got 10001",
        "codecs.sip[1]: expected one of PCMU, PCMA, G722, G729, opus, got 'speex'",
        (
            "ice.browser[0].urls[0]: expected a URL with scheme stun:, stuns:, "
            "turn: or turns:, got 'http://stun.example.org'"
        ),
        "pbx.registr: unknown key",
        "users[0].allow_outbound[0]: bad dial pattern '2x[x': unclosed '['",
        "users[0].pbx_auth.password: environment variable ALICE_PBX_PASSWORD is not set",
        "users[0].web_secret_hash: malformed scrypt hash (expected 6 '$'-fields)",
        "logging.level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'",
    }
    assert str(info.value).count("\n") == len(info.value.errors) - 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "pbx: {}\nusers: [{id: a, sip: '1001', web_secret_hash: H}]",
            "users[0].sip: bare extension '1001' needs pbx.domain or pbx.address to form a SIP URI",
        ),
        (
            "codecs: {telephone_event: false}",
            "codecs.telephone_event: must be true when sip.dtmf_mode is 'rfc4733'",
        ),
        (
            "users: [{id: a, sip: 'sip:1@x.example'}]",
            "users[0].web_secret_hash: required when web_auth.mode is 'secret'",
        ),
        (
            "web_auth: {mode: token}\nusers: [{id: a, sip: 'sip:1@x.example'}]",
            "users[0].web_token: required when web_auth.mode is 'token'",
        ),
        (
            (
                "users: [{id: a, sip: 'sip:1@x.example', web_token: t}, {id: a, sip: "
                "'sip:2@x.example', web_token: t}]\nweb_auth: {mode: token}"
            ),
            "users[1].id: duplicate user id 'a' (also users[0])",
        ),
        (
            "sip: {listen: [{port: 5060}, {port: 5060}]}",
            "sip.listen[1]: duplicate listen address udp 127.0.0.1:5060 (also listen[0])",
        ),
        (
            "sip: {websocket: {listen: {port: 8080}}}",
            "sip.websocket.listen: is http's own address 127.0.0.1:8080: use on_http instead",
        ),
        (
            "sip: {websocket: {on_http: false}}",
            "sip.websocket.on_http: SIP over WebSocket needs the HTTP listener (on_http) or a listen",
        ),
    ],
)
def test_cross_section_checks(text: str, expected: str) -> None:
    text = text.replace("web_secret_hash: H", "web_secret_hash: " + USER.split("web_secret_hash: ")[1][:-1])
    assert expected in errors_of(text)


def test_dtmf_info_allows_no_telephone_event() -> None:
    config = load("sip: {dtmf_mode: INFO}\ncodecs: {telephone_event: false}")
    assert config.sip.dtmf_mode is DtmfMode.INFO


def test_direct_construction_validates_too() -> None:
    with pytest.raises(InvalidValue) as info:
        RtpPorts(10001, 20000)
    assert isinstance(info.value, ValueError) and isinstance(info.value, ConfigError)
    assert info.value.problems == (
        ("start", "must be even (RTP takes the even port of each pair), got 10001"),
    )
    with pytest.raises(InvalidValue, match="reserved"):
        SipListen(Transport.WS)
    with pytest.raises(InvalidValue, match="at least one listen"):
        SipSection(listen=())
    with pytest.raises(InvalidValue, match="required for turn"):
        IceServer(urls=("turn:t.example",))
    with pytest.raises(InvalidValue, match="expected a host name"):
        HostPort("bad host")


def test_host_port_forms() -> None:
    assert HostPort.from_config("pbx.example.org") == HostPort("pbx.example.org", None)
    assert HostPort.from_config("192.0.2.1:5070") == HostPort("192.0.2.1", 5070)
    assert HostPort.from_config("[2001:db8::1]:5070") == HostPort("2001:db8::1", 5070)
    assert HostPort.from_config("[2001:db8::1]") == HostPort("2001:db8::1", None)
    assert str(HostPort("2001:db8::1", 5070)) == "[2001:db8::1]:5070"
    for bad in ("", "[2001:db8::1", "a:b:c", "host:", 5060):
        with pytest.raises(ValueError):
            HostPort.from_config(bad)


def test_extension_written_as_number_reads_as_string() -> None:
    hashed = USER.split("web_secret_hash: ")[1][:-1]
    config = load(
        f"pbx: {{domain: example.org}}\nusers: [{{id: a, sip: 1001, "
        f"aliases: [42], web_secret_hash: {hashed}}}]"
    )
    assert config.users[0].sip == "1001" and config.users[0].aliases == ("42",)


# --- environment overrides --------------------------------------------------------------------------


def test_env_overrides_file_values() -> None:
    env = {
        "GATEWAY_SIP__PUBLIC_ADDRESS": "203.0.113.5",
        "GATEWAY_HTTP__PORT": "8081",
        "GATEWAY_LOGGING__LEVEL": "DEBUG",
        "GATEWAY_SIP__LISTEN__1__PORT": "5070",
        "GATEWAY_CODECS__SIP": "[PCMA, opus]",
        "GATEWAY_MEDIA__RTP_PORTS__START": "30000",
        "GATEWAY_MEDIA__RTP_PORTS__END": "30999",
        "GATEWAY_PBX__REGISTER": "true",
        "GATEWAY_CONFIG": "/elsewhere/gateway.yaml",  # the file path, not an override
        "HOME": "/root",
    }
    config = load_config(SHIPPED, env)
    assert config.sip.public_address == HostPort("203.0.113.5")
    assert config.http.port == 8081
    assert config.logging.level is LogLevel.DEBUG
    assert config.sip.listen[1] == SipListen(Transport.TCP, "127.0.0.1", 5070)
    assert config.sip.listen[0].port == 5060
    assert config.codecs.sip == (Codec.PCMA, Codec.OPUS)
    assert config.media.rtp_ports == RtpPorts(30000, 30999)
    assert config.pbx.register is True


def test_env_override_creates_missing_sections() -> None:
    config = load(
        "", {"GATEWAY_MEDIA__RTP_PORTS__END": "10999", "GATEWAY_WEB_AUTH__SESSION_SECRET": "k3y-k3y-k3y-k3y!"}
    )
    assert config.media.rtp_ports.end == 10999
    secret = config.web_auth.session_secret
    assert secret is not None and secret.reveal() == "k3y-k3y-k3y-k3y!" and "k3y" not in repr(secret)


@pytest.mark.parametrize(
    ("var", "expected"),
    [
        ("GATEWAY_SIP__PROT", "GATEWAY_SIP__PROT: unknown setting 'sip.prot'"),
        ("GATEWAY_HTTP__PORT__X", "GATEWAY_HTTP__PORT__X: unknown setting 'http.port.x'"),
        ("GATEWAY_SIP__LISTEN__X__PORT", "GATEWAY_SIP__LISTEN__X__PORT: unknown setting 'sip.listen.x.port'"),
        (
            "GATEWAY_SIP__LISTEN__7__PORT",
            "GATEWAY_SIP__LISTEN__7__PORT: sip.listen[7] does not exist in the file",
        ),
        (
            "GATEWAY_WEB_AUTH__SESSION_SECRET__ENV",
            "GATEWAY_WEB_AUTH__SESSION_SECRET__ENV: unknown setting 'web_auth.session_secret.env'",
        ),
    ],
)
def test_unknown_override_names_the_variable(var: str, expected: str) -> None:
    assert expected in errors_of("sip: {listen: [{port: 5060}]}", {var: "1"})


@pytest.mark.parametrize("var", ["GATEWAY_CLUSTER_SECRET", "GATEWAY_NOPE", "GATEWAY_"])
def test_a_secret_for_a_missing_section_is_a_warning(var: str, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 39: GATEWAY_CLUSTER_SECRET set (a shared environment) for an instance without `cluster:`
    stopped it from starting; a variable without `__` that names no section is ignored, with a warning."""
    with caplog.at_level(logging.WARNING, logger="gateway.config.loader"):
        config = load("", {var: "s3cr3t-s3cr3t"})
    assert config.http.port == 8080  # the gateway starts
    (warning,) = [r.getMessage() for r in caplog.records if var in r.getMessage()]
    assert "ignored" in warning and "s3cr3t" not in warning


def test_bad_override_value_names_key_and_variable() -> None:
    assert errors_of("", {"GATEWAY_HTTP__PORT": "abc"}) == [
        "http.port: expected an integer 1-65535, got 'abc' (from GATEWAY_HTTP__PORT)"
    ]
    assert errors_of("", {"GATEWAY_SIP__LISTEN": "[{port: 1, prot: udp}]"}) == [
        "sip.listen[0].prot: unknown key (from GATEWAY_SIP__LISTEN)"
    ]


def test_short_session_secret_is_a_config_error() -> None:
    """The HMAC key of session tokens: a short one would be guessable (and used to crash at start-up)."""
    text = "web_auth: {session_secret: {env: GATEWAY_SESSION_KEY}}"
    errors = errors_of(text, {"GATEWAY_SESSION_KEY": "fifteen-bytes!!"})
    assert len(errors) == 1 and errors[0].startswith("web_auth.session_secret: must be at least 16 bytes")
    assert "fifteen" not in errors[0]


def test_variable_read_by_a_secret_is_not_an_override() -> None:
    text = "web_auth: {session_secret: {env: GATEWAY_SESSION_KEY}}"
    config = load(text, {"GATEWAY_SESSION_KEY": "abc-abc-abc-abc-abc"})
    assert config.web_auth.session_secret is not None
    assert config.web_auth.session_secret.reveal() == "abc-abc-abc-abc-abc"


# --- secrets ------------------------------------------------------------------------------------------


def test_secret_sources(tmp_path: Path) -> None:
    (tmp_path / "turn.txt").write_text("from-file\n")
    text = """
    ice:
      browser:
        - {urls: ["turn:a.example"], username: u, credential: {env: TURN_PW}}
        - {urls: ["turn:b.example"], username: u, credential: {file: turn.txt}}
        - {urls: ["turn:c.example"], username: u, credential: inline-pw}
    """
    config = load(text, {"TURN_PW": "from-env"}, base_dir=tmp_path)
    secrets = [server.credential for server in config.ice.browser]
    assert [s.reveal() for s in secrets if s is not None] == ["from-env", "from-file", "inline-pw"]
    assert [repr(s) for s in secrets] == ["Secret(env:TURN_PW)", "Secret(file:turn.txt)", "Secret(inline)"]
    assert [str(s) for s in secrets] == ["Secret(env:TURN_PW)", "Secret(file:turn.txt)", "Secret(inline)"]


@pytest.mark.parametrize(
    ("secret", "env", "expected"),
    [
        ("{env: TURN_PW}", {}, "ice.browser[0].credential: environment variable TURN_PW is not set"),
        (
            "{env: TURN_PW}",
            {"TURN_PW": ""},
            "ice.browser[0].credential: environment variable TURN_PW is empty",
        ),
        ("{env: TURN_PW, optional: true}", {}, "ice.browser[0].credential: required for turn:/turns: URLs"),
        ("{file: missing.txt}", {}, "ice.browser[0].credential: cannot read secret file"),
        (
            "{env: A, file: b}",
            {},
            "ice.browser[0].credential: a secret reference needs exactly one of env: or file:",
        ),
        ("{}", {}, "ice.browser[0].credential: a secret reference needs exactly one of env: or file:"),
        (
            "{env: 'not a name'}",
            {},
            "ice.browser[0].credential.env: expected an environment variable name, got 'not a name'",
        ),
        (
            "{env: A, optional: sure}",
            {},
            "ice.browser[0].credential.optional: expected true or false, got 'sure'",
        ),
        ("''", {}, "ice.browser[0].credential: secret is empty"),
        (
            "[pw]",
            {},
            "ice.browser[0].credential: expected a secret: {env: NAME}, {file: PATH} or a string, got a list",
        ),
    ],
)
def test_secret_errors(secret: str, env: dict[str, str], expected: str) -> None:
    errors = errors_of(
        f"ice: {{browser: [{{urls: ['turn:a.example'], username: u, credential: {secret}}}]}}", env
    )
    assert any(error.startswith(expected) for error in errors), errors


def test_required_secret_ignores_optional_flag() -> None:
    text = f"users: [{USER[:-1]}, pbx_auth: {{username: a, password: {{env: PW, optional: true}}}}}}]"
    assert errors_of(text) == ["users[0].pbx_auth.password: environment variable PW is not set"]


def test_optional_secret_unset_is_none() -> None:
    config = load("web_auth: {session_secret: {env: SESSION_KEY, optional: true}}")
    assert config.web_auth.session_secret is None


def test_secret_file_error_does_not_echo_and_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    errors = errors_of_dir("web_auth: {session_secret: {file: empty}}", tmp_path)
    assert errors == [f"web_auth.session_secret: secret file {str(tmp_path / 'empty')!r} is empty"]


def errors_of_dir(text: str, base_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(text, {}, base_dir=base_dir)
    return list(info.value.errors)


def test_secret_never_appears_in_repr_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    env = dict(FULL_ENV, GATEWAY_LOGGING__LEVEL="debug")
    config = load_config(DATA / "full.yaml", env)
    logging.getLogger("test").info("loaded %s / %r", config, config)
    text = repr(config) + str(config) + caplog.text
    for value in (*FULL_ENV.values(), "file-session-key", "bob-inline-token"):
        assert value not in text
    assert "Secret(env:ALICE_PBX_PASSWORD)" in repr(config)
    # A secret typed in the wrong shape is not quoted back either.
    errors = errors_of("users: [{id: a, sip: '1', web_token: 98765432}]")
    assert not any("98765432" in error for error in errors)
    bad_bool = errors_of("web_auth: {session_secret: true}")
    assert bad_bool == [
        "web_auth.session_secret: expected a secret: {env: NAME}, {file: PATH} or a string, got a boolean"
    ]


def test_secret_object() -> None:
    secret = Secret(SecretSource.ENV, "X", "value")
    assert secret.reveal() == "value"
    assert f"{secret}" == "Secret(env:X)"
    assert secret != Secret(SecretSource.ENV, "X", "value")  # identity only: no comparison on the value
    with pytest.raises(InvalidValue):
        Secret(SecretSource.FILE, "", "v")
    with pytest.raises(InvalidValue):
        Secret(SecretSource.INLINE, "", "")


def test_iter_secrets() -> None:
    config = load_config(DATA / "full.yaml", FULL_ENV)
    found = {path: (s.describe() if s else None) for path, s in iter_secrets(config)}
    assert found == {
        "ice.browser[0].credential": None,
        "ice.browser[1].credential": "env:TURN_CREDENTIAL",
        "ice.gateway[0].credential": None,
        "web_auth.session_secret": "file:session.key",
        "users[0].pbx_auth.password": "env:ALICE_PBX_PASSWORD",
        "users[0].web_token": "env:ALICE_TOKEN",
        "users[1].web_token": "inline",
        "metrics.token": None,
        "admin.token": None,
        "audio_stream.token": None,
    }


# --- the check and hash-secret commands -------------------------------------------------------------


def run_check(path: Path, env: dict[str, str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli_check.check(str(path), env, out, err)
    return code, out.getvalue(), err.getvalue()


def test_check_summarises_a_valid_file() -> None:
    code, out, err = run_check(DATA / "full.yaml", FULL_ENV)
    # valid, with one warning: full.yaml hands browsers a static TURN credential (use ice.turn)
    assert code == 0 and err.count("warning:") == 1 and "ice.browser[1].credential is a static" in err
    for fragment in (
        "configuration OK",
        "udp 0.0.0.0:5080, tcp [::]:5081",
        "sip.example.org:5080",
        "203.0.113.5",
        "20000-20999 (500 RTP/RTCP pairs)",
        "codecs SIP leg:    PCMA, G722\n",
        "codecs WebRTC leg: opus, PCMU\n",
        "tcp pbx.example.org:5062, outbound proxy [2001:db8::5]:5060, domain example.org, registration on",
        "users:             2 (alice, bob)",
        "secret users[0].pbx_auth.password: set (env:ALICE_PBX_PASSWORD)",
        "secret web_auth.session_secret: set (file:session.key)",
    ):
        assert fragment in out, fragment
    for value in (*FULL_ENV.values(), "file-session-key", "bob-inline-token"):
        assert value not in out


def test_check_shipped_file_warns_about_media_address() -> None:
    code, out, _ = run_check(SHIPPED, {})
    assert code == 0
    assert "media public IP:   not set (SDP c= lines carry the local address: set it behind NAT)" in out
    assert "secret web_auth.session_secret: not set" in out
    assert "codecs video:      none (audio only" in out and "cluster:           off (one instance" in out


def test_check_shows_the_video_codecs_and_the_cluster(tmp_path: Path) -> None:
    """Issue 39: `check` showed neither; the Redis password only as set."""
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "codecs: {video: [VP8, H264]}\n"
        "web_auth: {session_secret: {env: SESSION}}\n"
        "cluster: {redis: 'redis://10.0.0.5:6380/2', password: {env: REDIS}, instance_id: gw1,"
        " secret: {env: CLUSTER}, advertise: {sip: '10.0.0.11:5060', http: 'http://10.0.0.11:8080'}}\n"
    )
    code, out, err = run_check(path, {"SESSION": "s" * 32, "CLUSTER": "c" * 32, "REDIS": "hunter2-hunter2"})
    assert code == 0, err
    assert "codecs video:      VP8, H264\n" in out
    assert "cluster:           instance gw1, advertised as sip 10.0.0.11:5060, http://10.0.0.11:8080;" in out
    assert "redis redis://10.0.0.5:6380/2, keys gw:*, heartbeat 2 s, lease 6 s" in out
    assert "hunter2" not in out + err


def test_check_lists_every_error_on_stderr() -> None:
    code, out, err = run_check(DATA / "many-errors.yaml", {})
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].endswith("many-errors.yaml: invalid configuration (12 problems)")
    assert "  sip.listen[2].prot: unknown key" in lines
    assert "  logging.level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL, got 'loud'" in lines
    assert len(lines) == 13


def test_check_run_with_namespace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("GATEWAY_WEB_SESSION_SECRET", raising=False)
    for name in [n for n in __import__("os").environ if n.startswith("GATEWAY_")]:
        monkeypatch.delenv(name)
    assert cli_check.run(argparse.Namespace(config=str(SHIPPED))) == 0
    assert "configuration OK" in capsys.readouterr().out
    assert cli_check.run(argparse.Namespace(config=str(DATA / "nope.yaml"))) == 1
    assert "nope.yaml: no such file" in capsys.readouterr().err


def test_add_parser_registers_check_and_hash_secret() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cli_check.add_parser(sub)
    args = parser.parse_args(["check", "-c", "x.yaml"])
    assert args.config == "x.yaml"
    args = parser.parse_args(["hash-secret", "--algorithm", "pbkdf2_sha256"])
    assert args.handler is cli_check.run_hash_secret and args.algorithm == "pbkdf2_sha256"


class _Stdin(io.StringIO):
    def __init__(self, text: str, tty: bool = False) -> None:
        super().__init__(text)
        self._tty = tty

    def isatty(self) -> bool:
        return self._tty


def test_hash_secret_from_stdin() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert cli_check.hash_secret_command(_Stdin("correct horse\n"), out, err) == 0
    line = out.getvalue().strip()
    assert line.startswith("scrypt$") and verify_secret("correct horse", line)
    assert cli_check.hash_secret_command(_Stdin("\n"), out, err) == 1
    assert "empty secret" in err.getvalue()


def test_hash_secret_prompts_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = iter(["pw-one", "pw-one", "a", "b"])
    monkeypatch.setattr(getpass, "getpass", lambda prompt="": next(answers))
    out, err = io.StringIO(), io.StringIO()
    assert cli_check.hash_secret_command(_Stdin("", tty=True), out, err) == 0
    assert verify_secret("pw-one", out.getvalue().strip())
    assert cli_check.hash_secret_command(_Stdin("", tty=True), io.StringIO(), err) == 1
    assert "differ" in err.getvalue()


def test_hash_secret_pbkdf2_loads_in_config() -> None:
    out = io.StringIO()
    from gateway.identity import HashAlgorithm

    assert cli_check.hash_secret_command(_Stdin("pw\n"), out, io.StringIO(), HashAlgorithm.PBKDF2_SHA256) == 0
    hashed = out.getvalue().strip()
    config = load(f"users: [{{id: a, sip: 'sip:1@x.example', web_secret_hash: '{hashed}'}}]")
    stored = config.users[0].web_secret_hash
    assert stored is not None and stored.verify("pw") and str(stored) == hashed


def test_call_timeouts_are_validated_and_overridable() -> None:
    from gateway.config.loader import load_config_text

    config = load_config_text(
        "calls: {setup_timeout: 5}\n", env={"GATEWAY_CALLS__INBOUND_RING_TIMEOUT": "45"}
    )
    assert config.calls.setup_timeout == 5 and config.calls.inbound_ring_timeout == 45
    with pytest.raises(ConfigError) as caught:
        load_config_text("calls: {setup_timout: 5, answer_timeout: 0}\n", env={})
    assert "calls.setup_timout: unknown key" in caught.value.errors
    assert any(e.startswith("calls.answer_timeout: expected a number") for e in caught.value.errors)


def test_a_plain_secret_pasted_as_a_hash_is_never_echoed() -> None:
    """Issue 10, item 8: the error for a web_secret_hash that is not a hash must not print it."""
    errors = errors_of("users: [{id: a, sip: '1', web_secret_hash: 'hunter2-plain'}]")
    assert errors and not any("hunter2" in error for error in errors), errors


def test_room_numbers_and_mix_size() -> None:
    config = load("rooms: {numbers: {3001: room-a, '*42': lobby}, max_mixed: 4}")
    assert config.rooms.numbers == (("3001", "room-a"), ("*42", "lobby")) and config.rooms.max_mixed == 4
    assert config.rooms.room_for("3001") == "room-a" and config.rooms.room_for("3002") is None
    for text, expected in (
        ("rooms: {numbers: [3001]}", "rooms.numbers: expected a mapping of number: room id"),
        ("rooms: {numbers: {abc: room-a}}", "rooms.numbers: room number 'abc' must be 1-32 of 0-9 * # +"),
        ("rooms: {numbers: {3001: 'a b'}}", "rooms.numbers: room id 'a b' of number 3001 must be"),
        ("rooms: {max_mixed: 1}", "rooms.max_mixed: expected an integer 2-32, got 1"),
    ):
        assert any(expected in error for error in errors_of(text)), (text, errors_of(text))


def test_video_codecs_reach_the_bridge_settings() -> None:
    """codecs.video (issue 19): off by default, names case-insensitive, in the bridge's settings."""
    from gateway.media.bridge_settings import settings_from_config
    from gateway.media.rtp.ports import PortRange, RtpPortAllocator

    allocator = RtpPortAllocator(PortRange(44000, 44999))
    assert settings_from_config(load_config_text("", {}), allocator, call_id="x").video_codecs == ()
    config = load_config_text("codecs: {video: [h264, VP8]}", {})
    assert settings_from_config(config, allocator, call_id="x").video_codecs == ("H264", "VP8")
