"""Command-line options of the desk phone, parsed into one frozen dataclass."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

# The codecs a desk phone offers, in order. Everything else the pjsua2 wheel ships (speex at three rates,
# iLBC, GSM, L16) is disabled: speex/16000 is the wheel's default first choice and sounds wrong.
DEFAULT_CODECS = ("PCMU", "PCMA", "G722")
ANSWER_MODES = ("auto", "ring", "busy", "decline")


@dataclass(frozen=True, slots=True)
class PhoneOptions:
    host: str = "127.0.0.1"
    port: int = 5070
    user: str = "2000"
    display_name: str = ""
    domain: str = ""  # the AOR's domain; defaults to the registrar's host, else host:port
    registrar: str = ""  # e.g. sip:127.0.0.1:5060; empty: do not register
    password: str = ""
    auth_user: str = ""  # defaults to user
    answer: str = "auto"  # auto | ring | busy | decline | a status code such as 480
    answer_delay_ms: int = 0
    tone: float = 0.0  # Hz; 0: send silence
    echo: bool = False
    record_dir: Path | None = None
    call: str = ""  # a URI to call once started (and registered, if registering)
    hangup_after: float = 0.0  # seconds after CONFIRMED; 0: never
    codecs: tuple[str, ...] = DEFAULT_CODECS
    rtp_port: int = 4000
    media_public: str = ""  # the address its SDP gives for its RTP (a relay in front of it); empty: host
    control: bool = False
    log_level: int = 0  # pjsip's own log on stderr (0 silent .. 5 chatty)
    srtp: str = "off"  # off | optional | mandatory: SDES-SRTP (RFC 4568), offered even over UDP
    # SIP over TLS: listen on this port with this certificate and key (PEM) and speak only TLS; peers'
    # certificates are verified against tls_ca when given
    tls_port: int = 0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    prack: str = "off"  # off | optional | mandatory: 100rel (RFC 3262): mandatory requires it both ways
    # where `call 1001` goes (host:port): a bare number or user becomes sip:1001@dial_domain; empty: the
    # registrar's host:port when registering, else a bare number is refused with a hint
    dial_domain: str = ""
    busy_users: tuple[str, ...] = ()  # calls to these user parts get 486 Busy Here (a demo's busy line)
    reject_unknown: bool = False  # calls to any other user part than `user` (and busy_users) get 404

    def __post_init__(self) -> None:
        if self.answer not in ANSWER_MODES and not (self.answer.isdigit() and 300 <= int(self.answer) <= 699):
            raise ValueError(
                f"--answer must be one of {ANSWER_MODES} or a status 300-699, not {self.answer!r}"
            )
        if not self.codecs:
            raise ValueError("--codecs needs at least one codec")
        if self.tls_port and (self.tls_cert is None or self.tls_key is None):
            raise ValueError("--tls-port needs --tls-cert and --tls-key")
        if self.dial_domain and not _is_host_port(self.dial_domain):
            raise ValueError(f"--dial-domain must be HOST or HOST:PORT, not {self.dial_domain!r}")

    @property
    def aor_domain(self) -> str:
        if self.domain:
            return self.domain
        if self.registrar:
            return self.registrar.split(":", 1)[1].split(";", 1)[0]  # sip:host:port;params -> host:port
        return f"{self.host}:{self.port}"

    @property
    def uri(self) -> str:
        return f"sip:{self.user}@{self.aor_domain}"

    def dial_uri(self, target: str) -> str:
        """The SIP URI `call TARGET` dials: a URI as given; `1001@host:port` with sip: in front; a bare
        number or user (`1001`) at the dial domain (--dial-domain, else the registrar's host:port).
        A ValueError says what to type instead."""
        target = target.strip()
        if target.lower().startswith(("sip:", "sips:", "tel:")) or "<" in target:
            return target  # a URI (or a name-addr) as given: pjsua judges it
        if not target or any(c.isspace() for c in target):
            raise ValueError(
                f"cannot dial {target!r}: type a number (call 1001) or a URI (call sip:1001@host)"
            )
        if "@" in target:
            return f"sip:{target}"
        domain = self.dial_domain or (self.aor_domain if self.registrar else "")
        if not domain:
            raise ValueError(
                f"no dial domain for {target!r}: type a SIP URI (call sip:{target}@host:port), "
                "or start the phone with --dial-domain host:port"
            )
        return f"sip:{target}@{domain}"

    def answer_for(self, dialled_user: str) -> str:
        """How to answer a call to `dialled_user` (the INVITE's Request-URI user part): the --answer
        mode, or "486" for a busy line, or "404" for a user this phone is not (with --reject-unknown)."""
        if dialled_user in self.busy_users:
            return "486"
        if self.reject_unknown and dialled_user != self.user:
            return "404"
        return self.answer


def _is_host_port(text: str) -> bool:
    host, sep, port = text.rpartition(":")
    if not sep or host.endswith(":"):  # a bare host, or an IPv6 address without brackets
        return bool(text) and not any(c in text for c in "@/ ;")
    return bool(host) and port.isdigit() and not any(c in host for c in "@/ ;")


def _host_port(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host, int(port)


def parse_args(argv: list[str] | None = None) -> PhoneOptions:
    p = argparse.ArgumentParser(
        prog="desk_phone.py",
        description="A real SIP desk phone (pjsua2) with no sound card: tones, echo, recording, DTMF, INFO.",
    )
    p.add_argument("--listen", type=_host_port, default=("127.0.0.1", 5070), help="SIP UDP address")
    p.add_argument("--user", default="2000", help="user part of this phone's address (and auth user)")
    p.add_argument("--name", default="", help="display name")
    p.add_argument("--domain", default="", help="domain of the address of record")
    p.add_argument("--register", default="", metavar="URI", help="registrar to REGISTER with, sip:host:port")
    p.add_argument("--password", default="", help="digest password for --register")
    p.add_argument("--auth-user", default="", help="digest user name (default: --user)")
    p.add_argument("--answer", default="auto", help="auto | ring | busy | decline | a status code (480...)")
    p.add_argument(
        "--answer-delay", type=int, default=0, metavar="MS", help="ring this long before answering"
    )
    p.add_argument("--play-tone", type=float, default=0.0, metavar="HZ", help="send a continuous tone")
    p.add_argument("--echo", action="store_true", help="send received audio back")
    p.add_argument("--record-dir", type=Path, default=None, help="record each call to DIR/call-N.wav")
    p.add_argument("--call", default="", metavar="URI", help="call this URI once started")
    p.add_argument(
        "--hangup-after", type=float, default=0.0, metavar="S", help="hang up S seconds after answer"
    )
    p.add_argument("--codecs", default=",".join(DEFAULT_CODECS), help="codecs in order (PCMU,PCMA,G722)")
    p.add_argument("--rtp-port", type=int, default=4000, help="first local RTP port to try")
    p.add_argument(
        "--media-public-address", default="", metavar="IP",
        help="the address its SDP gives for its RTP (a relay in front of it; default: --listen's host)",
    )  # fmt: skip
    p.add_argument("--control", action="store_true", help="JSON lines: commands on stdin, events on stdout")
    p.add_argument("--log-level", type=int, default=0, help="pjsip log level on stderr (0-5)")
    p.add_argument("--srtp", choices=("off", "optional", "mandatory"), default="off", help="SDES-SRTP use")
    p.add_argument("--tls-port", type=int, default=0, help="SIP over TLS on this port (then TLS only)")
    p.add_argument("--tls-cert", type=Path, default=None, help="PEM certificate for --tls-port")
    p.add_argument("--tls-key", type=Path, default=None, help="PEM private key for --tls-port")
    p.add_argument("--tls-ca", type=Path, default=None, help="PEM CAs that peers' certificates must chain to")
    p.add_argument(
        "--100rel", dest="prack", choices=("off", "optional", "mandatory"), default="off",
        help="reliable provisional responses (RFC 3262): mandatory = Require: 100rel",
    )  # fmt: skip
    p.add_argument(
        "--dial-domain", default="", metavar="HOST:PORT",
        help="where `call 1001` goes: sip:1001@HOST:PORT (default: the --register host)",
    )  # fmt: skip
    p.add_argument(
        "--busy", action="append", default=[], metavar="USER",
        help="answer calls to USER (e.g. 2001) with 486 Busy Here; repeatable",
    )  # fmt: skip
    p.add_argument(
        "--reject-unknown", action="store_true",
        help="answer calls to any user but --user (and --busy) with 404 Not Found",
    )  # fmt: skip
    a = p.parse_args(argv)
    try:
        return PhoneOptions(
            host=a.listen[0],
            port=a.listen[1],
            user=a.user,
            display_name=a.name,
            domain=a.domain,
            registrar=a.register,
            password=a.password,
            auth_user=a.auth_user,
            answer=a.answer,
            answer_delay_ms=a.answer_delay,
            tone=a.play_tone,
            echo=a.echo,
            record_dir=a.record_dir,
            call=a.call,
            hangup_after=a.hangup_after,
            codecs=tuple(c.strip() for c in a.codecs.split(",") if c.strip()),
            rtp_port=a.rtp_port,
            media_public=a.media_public_address,
            control=a.control,
            log_level=a.log_level,
            srtp=a.srtp,
            tls_port=a.tls_port,
            tls_cert=a.tls_cert,
            tls_key=a.tls_key,
            tls_ca=a.tls_ca,
            prack=a.prack,
            dial_domain=a.dial_domain,
            busy_users=tuple(u for arg in a.busy for u in arg.split(",") if u),
            reject_unknown=a.reject_unknown,
        )
    except ValueError as exc:
        p.error(str(exc))
