"""A real SIP desk phone with no sound card, built on pjsua2.

Examples (each phone prints what happens; type `help` for its commands: `call 1001`, `hangup`,
`dtmf 123`, `hold`, `unhold`, `quit`...):

    python examples/desk_phone.py --listen 127.0.0.1:5070 --user 2000 --play-tone 440
    python examples/desk_phone.py --listen 127.0.0.1:5071 --user 2001 --echo --call sip:2000@127.0.0.1:5070
    python examples/desk_phone.py --user 2000 --register sip:127.0.0.1:5060 --password secret2000

It answers incoming calls (--answer auto|ring|busy|decline|CODE, --answer-delay MS), sends a tone
(--play-tone HZ) or echoes what it hears (--echo), records each call to a WAV file (--record-dir DIR),
sends and logs DTMF (RFC 2833 and SIP INFO) and INFO, holds and resumes, and registers with digest auth.
`call 1001` dials sip:1001@ the --dial-domain (default: the --register host). `make run` starts it as
`--busy 2001 --reject-unknown`: 2001 answers 486 Busy Here, any number but its own 404 Not Found.
With --control it reads JSON commands on stdin and writes JSON events on stdout, one per line: that is how
the tests drive it (peers/phone.py). The phone itself is the package peers/deskphone.
"""

from __future__ import annotations

import sys

from peers.deskphone import main, parse_args

if __name__ == "__main__":
    sys.exit(main(parse_args()))
