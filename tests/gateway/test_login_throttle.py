"""Login throttling that slows the guesser, not the user (issue 10, item 3): per (user, address) pair,
per address once it failed for several user ids, and per user id for addresses that failed before;
waits double; each lockout is logged once with the address; a guesser never gets the owner of the
account locked out, nor one user's wrong passwords her colleagues behind the same address."""

from __future__ import annotations

import logging

import pytest

from gateway.identity.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_waits_doubling_times_after_its_free_failures(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, free_per_address=3, free_per_pair=10, users_per_address=2, base=1.0)
    waits = []
    with caplog.at_level(logging.WARNING):
        for n in range(7):
            throttle.failed(f"user{n}", "192.0.2.66")  # a different user id each time: per address
            waits.append(throttle.wait("anyone", "192.0.2.66"))
    assert waits == [0.0, 0.0, 0.0, 1.0, 2.0, 4.0, 8.0]
    assert [r.getMessage() for r in caplog.records] == [
        "login throttled: 4 failed logins from 192.0.2.66 for over 2 user ids; waits double from 1 s"
    ]
    assert throttle.wait("anyone", "192.0.2.7") == 0.0  # another address is not slowed
    clock.now += 8.0
    assert throttle.wait("anyone", "192.0.2.66") == 0.0


def test_one_users_failures_slow_her_pair_not_her_address() -> None:
    """Issue 67 item 22: an office behind one NAT address is one address. 30 wrong passwords for alice
    from it slow alice there, not bob nor carol; failures for six user ids (over users_per_address 5)
    past the free ten slow the whole address."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock)  # the defaults: 10 per address, 5 per pair, 5 user ids
    for _ in range(30):
        throttle.failed("alice", "192.0.2.80")
        clock.now += 0.1
    assert throttle.wait("alice", "192.0.2.80") > 0
    assert throttle.wait("bob", "192.0.2.80") == 0.0 and throttle.wait("carol", "192.0.2.80") == 0.0
    for n in range(5):  # five more user ids: six in all
        throttle.failed(f"user{n}", "192.0.2.80")
    assert throttle.wait("bob", "192.0.2.80") > 0  # a sprayer: the address waits
    assert throttle.wait("bob", "192.0.2.81") == 0.0


def test_a_pair_is_throttled_and_a_success_clears_it() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, free_per_pair=2, free_per_address=100)
    for _ in range(3):
        throttle.failed("alice", "192.0.2.1")
    assert throttle.wait("alice", "192.0.2.1") == 1.0 and throttle.wait("bob", "192.0.2.1") == 0.0
    clock.now += 1.0
    throttle.succeeded("alice", "192.0.2.1")
    assert throttle.wait("alice", "192.0.2.1") == 0.0


def test_a_distributed_guess_at_one_user_never_locks_out_the_owner() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, user_alarm=5, free_per_pair=100, free_per_address=100)
    for n in range(30):  # 30 addresses, one guess each
        throttle.failed("alice", f"198.51.100.{n}")
    assert throttle.wait("alice", "198.51.100.3") > 0  # an address that guessed before waits
    assert throttle.wait("alice", "192.0.2.10") == 0.0  # alice's own, clean address goes through


def test_failures_are_forgotten_and_the_table_is_bounded() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, free_per_address=1, forget_after=60.0, max_records=50)
    for _ in range(3):
        throttle.failed("x", "192.0.2.9")
    clock.now += 61.0
    throttle.failed("x", "192.0.2.9")  # a failure long after: counted from one again
    assert throttle.wait("x", "192.0.2.9") == 0.0
    for n in range(500):
        throttle.failed(f"u{n}", f"10.0.{n // 250}.{n % 250}")
    assert len(throttle._records) <= 50 + 3  # pruned before each failure's three records


def test_a_guessed_user_id_raises_a_rate_limited_alarm_and_blocks_no_clean_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 32, item 5: 25 wrong logins for alice from five addresses (none past its own free tries)
    raise the alarm once, counted; alice's login from a sixth address, and from an address that failed
    only for another user id, is not slowed; the guessing addresses are, from their first failure on,
    for alice only; and a success clears that."""
    clock = Clock()
    throttle = LoginThrottle(clock=clock)  # the defaults: 10 per address, 5 per pair, alarm at 20
    throttle.failed("bob", "192.0.2.50")  # someone else's typo, earlier
    with caplog.at_level(logging.WARNING, logger="gateway.identity.throttle"):
        for n in range(25):
            throttle.failed("alice", f"127.0.0.{2 + n % 5}")
            clock.now += 1.0
    alarms = [r.getMessage() for r in caplog.records if "alarm" in r.getMessage()]
    assert len(alarms) == 1 and "'alice'" in alarms[0] and "20 failed logins" in alarms[0], alarms
    assert throttle.alarms == 1
    assert throttle.wait("alice", "127.0.0.7") == 0.0
    assert throttle.wait("alice", "192.0.2.50") == 0.0
    assert throttle.wait("bob", "127.0.0.2") == 0.0  # the guessers are slowed for alice, not for bob
    assert 0.0 < throttle.wait("alice", "127.0.0.6") <= 32.0  # five failures: its own doubling
    throttle.succeeded("alice", "127.0.0.6")
    assert throttle.wait("alice", "127.0.0.6") == 0.0


def test_the_alarm_repeats_every_five_alarms_and_at_most_ten_lines_per_10_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, user_alarm=2, free_per_address=1000, free_per_pair=1000)
    with caplog.at_level(logging.WARNING, logger="gateway.identity.throttle"):
        for n in range(12):  # alarms at 2 and 12 failures
            throttle.failed("alice", f"198.51.100.{n}")
        for user in range(20):  # twenty more users guessed at in the same second
            for n in range(2):
                throttle.failed(f"user{user}", f"203.0.113.{n}")
    alarms = [r.getMessage() for r in caplog.records if "alarm" in r.getMessage()]
    assert len(alarms) == 10 and alarms[1].startswith("login alarm: 12 failed"), alarms[:2]
    assert throttle.alarms == 21
