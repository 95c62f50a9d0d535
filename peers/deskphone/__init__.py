"""A real SIP desk phone built on pjsua2, for the demo, the examples and interop tests.

Run it as ``python examples/desk_phone.py --help`` or ``python -m peers.deskphone --help``. The package splits it in four small modules:
``options`` (command line), ``control`` (events out, commands in), ``call`` (one call's callbacks and
audio wiring) and ``phone`` (the endpoint, the account and the single-threaded loop).
"""

from .options import PhoneOptions, parse_args
from .phone import Phone, main

__all__ = ["Phone", "PhoneOptions", "main", "parse_args"]
