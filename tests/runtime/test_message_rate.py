"""MessageThrottle (gateway/runtime/message_rate.py) with a clock the test drives: the burst passes,
then the rate; a recipient's bucket is shared by all senders, a pair's by that sender only; a refusal
takes nothing and says when to try again; old keys are forgotten past the cap."""

from __future__ import annotations

import pytest

from gateway.runtime.message_rate import MessageThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_burst_passes_then_the_rate_and_a_refusal_says_when() -> None:
    clock = Clock()
    throttle = MessageThrottle(5.0, 20, clock)
    assert all(throttle.admit("sip:666@pbx", ["alice"]) is None for _ in range(20))
    assert throttle.admit("sip:666@pbx", ["alice"]) == 1.0
    clock.now += 0.2  # one token back
    assert throttle.admit("sip:666@pbx", ["alice"]) is None
    assert throttle.admit("sip:666@pbx", ["alice"]) is not None


def test_the_recipients_bucket_is_shared_and_the_pairs_is_not() -> None:
    clock = Clock()
    throttle = MessageThrottle(1.0, 3, clock)
    for _ in range(3):
        assert throttle.admit("sip:a@x", ["alice"]) is None
    assert throttle.admit("sip:b@x", ["alice"]) is not None  # alice's own bucket is empty
    assert throttle.admit("sip:a@x", ["bob"]) is None  # bob's are full
    clock.now += 3.0
    assert throttle.admit("sip:b@x", ["alice"]) is None


def test_a_refusal_takes_no_token_from_any_bucket() -> None:
    clock = Clock()
    throttle = MessageThrottle(1.0, 2, clock)
    assert throttle.admit("sip:a@x", ["alice"]) is None
    assert throttle.admit("sip:a@x", ["alice"]) is None
    assert throttle.admit("sip:a@x", ["alice", "bob"]) is not None  # alice is empty: bob keeps his
    assert throttle.admit("sip:c@x", ["bob"]) is None
    assert throttle.admit("sip:c@x", ["bob"]) is None


def test_keys_beyond_the_cap_are_forgotten_oldest_first() -> None:
    throttle = MessageThrottle(1.0, 1, Clock(), max_keys=4)
    assert throttle.admit("sip:a@x", ["alice"]) is None
    for sender in ("b", "c", "d"):
        throttle.admit(f"sip:{sender}@x", [f"user-{sender}"])
    assert throttle.admit("sip:a@x", ["alice"]) is None  # alice's buckets were evicted: full again


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        MessageThrottle(0.0, 1, Clock())
