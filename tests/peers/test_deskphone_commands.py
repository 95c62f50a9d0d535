"""The desk phone's terminal (peers/deskphone, issue 36 item 10): `help` lists the commands, a bare
number is dialled at the dial domain (`call 1001`), an unknown command or a pjsua error is one readable
line, and the demo's lines answer as documented: 2000 answers, 2001 is busy (486), others 404. The pure
parts are tested here without a phone; one phone process checks the lines a person sees."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from peers.demo import require_desk_phone
from peers.deskphone import PhoneOptions, parse_args
from peers.deskphone.control import help_text, parse_command
from peers.ports import free_port
from tests.conftest import REPO


def test_a_bare_number_or_user_is_dialled_at_the_dial_domain() -> None:
    demo = PhoneOptions(dial_domain="127.0.0.1:5060")
    assert demo.dial_uri("1001") == "sip:1001@127.0.0.1:5060"
    assert demo.dial_uri(" alice ") == "sip:alice@127.0.0.1:5060"
    assert demo.dial_uri("1001@pbx.example.org") == "sip:1001@pbx.example.org"
    assert demo.dial_uri("sip:2000@127.0.0.1:5070") == "sip:2000@127.0.0.1:5070"  # a URI as given
    assert demo.dial_uri("sips:2000@example.org") == "sips:2000@example.org"
    registered = PhoneOptions(registrar="sip:127.0.0.1:5062;transport=udp")
    assert registered.dial_uri("1001") == "sip:1001@127.0.0.1:5062"  # its PBX, by default
    with pytest.raises(ValueError, match="--dial-domain host:port"):
        PhoneOptions().dial_uri("1001")  # no PBX known: a hint, not pjsua's "Invalid Request URI"
    with pytest.raises(ValueError, match="type a number"):
        demo.dial_uri("10 01")
    with pytest.raises(ValueError, match="'pbx@x'"):
        PhoneOptions(dial_domain="pbx@x")


def test_the_demo_lines_answer_busy_and_not_found() -> None:
    demo = parse_args(
        ["--user", "2000", "--busy", "2001", "--reject-unknown", "--dial-domain", "127.0.0.1:5060"]
    )
    assert demo.dial_domain == "127.0.0.1:5060"
    assert [demo.answer_for(user) for user in ("2000", "2001", "2099", "")] == ["auto", "486", "404", "404"]
    plain = parse_args([])  # the tests' phone: answers whatever is dialled, as before
    assert [plain.answer_for(user) for user in ("2000", "2099")] == ["auto", "auto"]
    assert parse_args(["--busy", "2001,2002", "--busy", "2003"]).busy_users == ("2001", "2002", "2003")


def test_help_lists_every_command_and_where_a_number_goes() -> None:
    text = help_text("127.0.0.1:5060")
    for command in (
        "call",
        "hangup",
        "answer",
        "dtmf",
        "hold",
        "unhold",
        "transfer",
        "status",
        "help",
        "quit",
    ):
        assert f"\n  {command}" in text or f"| {command}" in text, command
    assert "call 1001" in text and "sip:1001@127.0.0.1:5060" in text
    assert "gateway too" in text  # under `make run`, quit ends the demo
    assert "--dial-domain" in help_text("")
    assert parse_command("help") == {"cmd": "help"}
    assert parse_command("call 1001") == {"cmd": "call", "uri": "1001"}
    assert parse_command("transfer sip:2001@pbx") == {"cmd": "transfer", "to": "sip:2001@pbx"}


def test_request_user_reads_the_request_uri() -> None:
    require_desk_phone()
    from peers.deskphone.call import request_user

    assert request_user("INVITE sip:2001@127.0.0.1:5070 SIP/2.0\r\nTo: <sip:x@y>\r\n\r\n") == "2001"
    assert request_user("INVITE sip:2099;phone-context=x@127.0.0.1 SIP/2.0\r\n") == "2099"
    assert request_user("INVITE tel:+15550001 SIP/2.0\r\n") == "+15550001"
    assert request_user("INVITE sip:127.0.0.1:5070 SIP/2.0\r\n") == ""
    assert request_user("garbage") == ""


def test_a_person_at_the_phone_sees_help_and_one_line_errors() -> None:
    require_desk_phone()
    port = free_port(socket.SOCK_DGRAM)
    typed = "help\ncall 1001\nbogus\ndtmf 1\ncall sip:x@@@\nquit\n"
    done = subprocess.run(
        [sys.executable, "examples/desk_phone.py", "--listen", f"127.0.0.1:{port}", "--dial-domain",
         "127.0.0.1:9"],
        cwd=REPO, input=typed, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    out = done.stdout
    assert done.returncode == 0, done.stderr[-2000:]
    assert "quit                   stop this phone" in out and "sip:1001@127.0.0.1:9" in out, out
    assert "ok cmd=help" not in out, out  # the list is the answer
    assert "ok cmd=call call=1 uri=sip:1001@127.0.0.1:9" in out, out
    assert "error (bogus): unknown command 'bogus' (type help for the list)" in out, out
    assert "error (dtmf): " in out and "../src/" not in out, out  # pjsua's words, not its C++ source
    bad = next(line for line in out.splitlines() if line.startswith("error (call)"))
    assert bad == "error (call): Invalid Request URI (PJSIP_EINVALIDREQURI) (in pjsua_call_make_call)", out
    assert "pjlib" not in done.stderr  # pjlib's start-up banner stays out of the terminal
    assert "Traceback" not in out + done.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:  # its port taken: one line too
        squatter.bind(("127.0.0.1", 0))
        taken = subprocess.run(
            [sys.executable, "examples/desk_phone.py", "--listen", f"127.0.0.1:{squatter.getsockname()[1]}"],
            cwd=REPO, input="", capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert taken.returncode == 1
    assert "error (start): Address already in use" in taken.stdout and "../src/" not in taken.stdout, (
        taken.stdout
    )
