"""`python -m peers.deskphone --help`: the desk phone (examples/desk_phone.py runs the same)."""

import sys

from peers.deskphone import main, parse_args

sys.exit(main(parse_args()))
