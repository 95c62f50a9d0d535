"""A client's own network, whose address can change mid-call (issue 34: a laptop moving from Wi-Fi to
wired, a phone's handover): a network namespace behind a veth pair, as root, with `ip` (iproute2).

The root namespace side of the pair holds ``host_ip`` (a gateway listens there); the namespace side
holds the client's address, 10.<site>.<band>.2 at first. `move()` deletes it and adds the next one: the
client's sockets, signalling and media, are dead from then on, and nothing tells the gateway (no FIN, no
RST reaches it). `wrapper()` writes an executable that runs a program inside the namespace (a browser
started by Playwright keeps its pipes). One band per pytest-xdist worker, so that workers do not meet.

``families`` gives the client IPv4 (``"IP4"``), IPv6 (``"IP6"``: ``host_ip6`` fd42:<site>:<band>::1 on
the root side, ``address6`` ...::2 inside, issue 68) or both: a client with only "IP6" has no IPv4
address at all (its loopback has ::1 only), as a phone on an IPv6-only mobile network. IPv6 addresses
are added without duplicate address detection (``nodad``): usable at once. ``site`` keeps networks of
different tests apart (their own names and subnets) when they run at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import ipaddress
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import TracebackType

from peers.binaries import unavailable

__all__ = ["ClientNetwork", "require_netns", "root_network_steady"]

# Chromium fails the requests it has in flight with ERR_NETWORK_CHANGED whenever an address comes or goes
# in its namespace (its AddressTrackerLinux; no switch turns that off), and making or deleting a
# ClientNetwork does so in the root namespace, where every other xdist worker's browser runs: a page of
# another test then lost its module script and its buttons stayed disabled. So the root namespace's
# changes and the loading of a page exclude each other across processes: a page load holds this file
# shared (root_network_steady), a change holds it exclusively (ClientNetwork), and for SETTLE seconds
# after it, the time a browser takes to hear of the change.
LOCK_PATH = Path(tempfile.gettempdir()) / "gateway-tests-root-network.lock"
SETTLE = 0.5


def require_netns() -> None:
    """Skip (fail under CI=true) unless this process may make network namespaces (root, iproute2)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        unavailable("network namespaces need root and iproute2 (`ip`)")


@contextlib.asynccontextmanager
async def root_network_steady() -> AsyncIterator[None]:
    """No ClientNetwork changes the root namespace's addresses while this lasts (a page loading)."""
    with LOCK_PATH.open("a") as lock:
        await asyncio.to_thread(fcntl.flock, lock, fcntl.LOCK_SH)
        yield  # closing the file releases the lock


@contextlib.contextmanager
def _changing_root_network() -> Iterator[None]:
    with LOCK_PATH.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            time.sleep(SETTLE)


def _worker_band() -> int:
    name = os.environ.get("PYTEST_XDIST_WORKER", "")
    return 1 + int(name[2:]) % 50 if name.startswith("gw") and name[2:].isdigit() else 0


class ClientNetwork:
    """The namespace and its veth pair (a context manager: made on entry, deleted on exit)."""

    def __init__(
        self, band: int | None = None, *, families: tuple[str, ...] = ("IP4",), site: int = 201
    ) -> None:
        if not families or set(families) - {"IP4", "IP6"}:
            raise ValueError(f"families must be IP4, IP6 or both, got {families!r}")
        if not 1 <= site <= 254:
            raise ValueError(f"site must be in 1-254, got {site!r}")
        self.band = _worker_band() if band is None else band
        self.families, self.site = families, site
        self.name = f"gwnc{self.band}" if site == 201 else f"gw{site}n{self.band}"
        self._host_iface, self._peer_iface = f"{self.name}h", f"{self.name}p"
        self.host_ip = f"10.{site}.{self.band}.1"
        prefix = ipaddress.IPv6Network(f"fd42:{site}:{self.band}::/64")  # written compressed: fd42:202::1
        self.host_ip6, self.address6 = str(prefix[1]), str(prefix[2])
        self._last = 2
        self.address = self._at(self._last)

    def _at(self, last: int) -> str:
        return f"10.{self.site}.{self.band}.{last}"

    def _ip(self, *args: str, inside: bool = False) -> None:
        command = ["ip", "netns", "exec", self.name, "ip", *args] if inside else ["ip", *args]
        subprocess.run(command, check=True, capture_output=True)

    def _delete(self) -> None:  # also what a killed run left
        subprocess.run(["ip", "netns", "del", self.name], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", self._host_iface], check=False, capture_output=True)

    def __enter__(self) -> ClientNetwork:
        with _changing_root_network():
            self._make()
        return self

    def _make(self) -> None:
        self._delete()
        try:
            self._ip("netns", "add", self.name)
            self._ip("link", "set", "lo", "up", inside=True)
            if "IP4" not in self.families:  # IPv6 only: not even a loopback IPv4 address
                self._ip("addr", "del", "127.0.0.1/8", "dev", "lo", inside=True)
            self._ip("link", "add", self._host_iface, "type", "veth", "peer", "name", self._peer_iface,
                     "netns", self.name)  # fmt: skip
            if "IP4" in self.families:
                self._ip("addr", "add", f"{self.host_ip}/24", "dev", self._host_iface)
                self._ip("addr", "add", f"{self.address}/24", "dev", self._peer_iface, inside=True)
            if "IP6" in self.families:
                self._ip("addr", "add", f"{self.host_ip6}/64", "dev", self._host_iface, "nodad")
                self._ip("addr", "add", f"{self.address6}/64", "dev", self._peer_iface, "nodad", inside=True)
            # no IPv6 link-local address on either end: it would come after duplicate address detection, a
            # second or two after "up", and Chromium takes that for a network change (a page loading then
            # fails with ERR_NETWORK_CHANGED): on the client's end, this network's own Chromium; on the
            # host's, every other test's Chromium in the host namespace (a page of another xdist worker
            # lost its modules so). The client's only network change is move()'s
            self._ip("link", "set", self._host_iface, "addrgenmode", "none")
            self._ip("link", "set", self._host_iface, "up")
            self._ip("link", "set", self._peer_iface, "addrgenmode", "none", inside=True)
            self._ip("link", "set", self._peer_iface, "up", inside=True)
        except BaseException:
            self._delete()
            raise

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        with _changing_root_network():
            self._delete()

    def move(self) -> str:
        """The client's network changes: its address goes, the next one comes. The new address (IPv4)."""
        if "IP4" not in self.families:
            raise ValueError("move() changes the IPv4 address: this network has none")
        old = self.address
        self._last += 1
        self.address = self._at(self._last)
        self._ip("addr", "del", f"{old}/24", "dev", self._peer_iface, inside=True)
        self._ip("addr", "add", f"{self.address}/24", "dev", self._peer_iface, inside=True)
        return self.address

    def wrapper(self, program: str, directory: Path) -> str:
        """An executable in ``directory`` that runs ``program`` (with its arguments) in the namespace."""
        path = directory / f"in-{self.name}-{Path(program).name}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {program} "$@"\n')
        path.chmod(0o755)
        return str(path)
