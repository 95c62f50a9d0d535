"""The SIP syntax: messages as bytes and as values (RFC 3261 §7, §18.3, §19.1, §20, §25).

Owns ``parser`` (bytes to messages, with its limits), ``message`` (requests, responses, their header
container and transaction keys), ``headers`` (typed header values: Via, CSeq, name-addr, tags and
branches), ``uri`` (SIP, SIPS, tel and other absolute URIs), ``framing`` (messages cut out of a byte
stream) and ``reason`` (the Reason header, RFC 3326). It may import only ``sipcore.errors``: every other
part of sipcore reads and writes messages through it, and it knows no transaction, dialog or
authentication.
"""
