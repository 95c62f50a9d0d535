"""Real SIP peers for tests: a pjsua2 desk phone (phone.py), sipp (sipp.py) and Kamailio (kamailio.py)."""
