"""Asterisk as a FreePBX-style PBX behind the gateway: the configuration the tests share.

The gateway registers each web user's extension (alice 1001, bob 1002) with her pbx_auth, as a desk
phone would; the pjsua2 desk phone registers as 2000. docs/interop.md gives the same pjsip.conf and
dialplan as the tested configuration for operators.

Extensions (context ``users``):
  600 Echo()       601 a prompt          602 Read() 4 digits, kept in AstDB test/read/<caller>
  603 Milliwatt (1004 Hz)                700 leave a voicemail for 1001     *97 VoiceMailMain
  604 Echo() after a re-INVITE of Asterisk's changing the codec to G.722 (PJSIP_SEND_SESSION_REFRESH)
  1001, 1002, 2000: Dial() the registered contact (2000 has a hint: BLF)
  610 Transfer() the caller to 2000 (a REFER from Asterisk)    **<ext> directed pickup (FreePBX's code)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from peers.asterisk import Asterisk, running_asterisk

ALICE_EXT, BOB_EXT, PHONE_EXT = "1001", "1002", "2000"
PASSWORDS = {ALICE_EXT: "pw1001", BOB_EXT: "pw1002", PHONE_EXT: "pw2000"}
MILLIWATT_HZ = 1004.0
# Debian's asterisk-core-sounds-en-wav installs the prompts as this language (sounds/en_US_f_Allison), with
# no "en" link unless Debian's asterisk package is installed too
LANGUAGE = "en_US_f_Allison"


def endpoint(ext: str, *, direct_media: bool = False, timers: str = "yes") -> str:
    """A FreePBX-like chan_pjsip extension: endpoint, digest auth and an AOR for one registration."""
    return (
        f"[{ext}]\ntype=endpoint\ncontext=users\ndisallow=all\nallow=ulaw,alaw,g722\n"
        f'auth={ext}\naors={ext}\ncallerid="Ext {ext}" <{ext}>\n'
        f"direct_media={'yes' if direct_media else 'no'}\ntimers={timers}\nrtp_symmetric=yes\n"
        "force_rport=yes\nrewrite_contact=yes\nsend_pai=yes\nlanguage=" + LANGUAGE + "\n"
        f"[{ext}]\ntype=auth\nauth_type=userpass\nusername={ext}\npassword={PASSWORDS[ext]}\n"
        # mailboxes on the AOR: answered to the gateway's SUBSCRIBE for message-summary (RFC 3842)
        f"[{ext}]\ntype=aor\nmax_contacts=1\nremove_existing=yes\nqualify_frequency=2\nmailboxes={ext}@default\n\n"
    )


PJSIP = "".join(endpoint(ext) for ext in PASSWORDS)

DIALPLAN = """[general]
static=yes
[users]
exten => 600,1,Answer()
 same => n,Echo()
exten => 601,1,Answer()
 same => n,Playback(hello-world)
 same => n,Hangup()
exten => 602,1,Answer()
 same => n,Read(DIGITS,beep,4,,,15)
 same => n,Set(DB(test/read/${CALLERID(num)})=${DIGITS})
 same => n,Milliwatt()
exten => 603,1,Answer()
 same => n,Milliwatt()
exten => 604,1,Answer()
 same => n,Wait(2)
 same => n,Set(PJSIP_MEDIA_OFFER(audio)=!all,g722)
 same => n,Set(PJSIP_SEND_SESSION_REFRESH()=invite)
 same => n,Echo()
exten => 610,1,Answer()
 same => n,Transfer(PJSIP/sip:2000@${ASTERISK_ADDRESS})
exten => 700,1,Answer()
 same => n,VoiceMail(1001@default,s)
exten => *97,1,Answer()
 same => n,VoiceMailMain(${CALLERID(num)}@default,s)
exten => _**X.,1,Pickup(${EXTEN:2}@users)
exten => _[12]00X,hint,PJSIP/${EXTEN}
exten => _[12]00X,1,Dial(PJSIP/${EXTEN},30,tT)
"""

VOICEMAIL = """[general]
format=wav
attach=no
minsecs=1
; a message plays at once (no date and caller read out first)
envelope=no
[default]
1001 => 4242,Alice
"""

# Asterisk's own transfer keys, for the parties of a Dial(..., tT): *2 attended, #1 blind
FEATURES = "[general]\n[featuremap]\natxfer => *2\nblindxfer => #1\n"

FILES = {
    "pjsip.conf": PJSIP,
    "extensions.conf": DIALPLAN,
    "voicemail.conf": VOICEMAIL,
    "features.conf": FEATURES,
}


def asterisk_pbx(workdir: Path, **overrides: str) -> Iterator[Asterisk]:
    """The shared PBX (a module fixture's body): FILES with ``overrides`` (a file's whole text)."""
    with running_asterisk(workdir, {**FILES, **overrides}) as pbx:
        yield pbx
