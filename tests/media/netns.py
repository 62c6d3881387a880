"""A private network namespace for real-media tests: WebRTC needs a non-loopback address.

Browsers, aiortc (aioice) and Janus all leave 127.0.0.1 out of their ICE candidates, so a real
call cannot run on loopback. Instead of using the host's network, each test gets a namespace
``summon-<random>`` holding a veth pair whose *both* ends live inside it (``va`` = 10.77.N.1,
``vb`` = 10.77.N.2) plus its own ``lo``. Nothing in it is routed anywhere: traffic can only
reach the addresses of the namespace itself. (A veth pair, not a ``dummy`` interface: the
``dummy`` kernel module is often missing in containers.)

Two ways in:

- child processes (Janus) run under ``ip netns exec`` (:meth:`NetNs.command`);
- the test's own code enters it with :meth:`NetNs.entered`: ``setns(2)`` for the *calling
  thread* only. Sockets opened by that thread — the asyncio loop's aiohttp and aiortc sockets —
  and processes it starts (Playwright's driver and Chromium) are then inside; sockets opened
  before stay where they were. On exit the thread goes back to the namespace it came from.

:func:`netns_unavailable` says why none of this can work here (not root, no ``ip``, the kernel
refuses), so tests skip with a clear reason instead of failing.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["NetNs", "create_netns", "netns_unavailable"]

_CLONE_NEWNET = 0x40000000
_IP_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class NetNs:
    """A namespace made by :func:`create_netns`. ``address`` (on ``va``) is where servers bind;
    ``peer_address`` (on ``vb``) is a second address for clients."""

    name: str
    address: str
    peer_address: str
    interface: str = "va"

    def command(self, *argv: str) -> list[str]:
        """``argv`` wrapped to run inside the namespace (for ``subprocess``)."""
        return ["ip", "netns", "exec", self.name, *argv]

    @contextmanager
    def entered(self) -> Iterator[None]:
        """Move the calling thread into the namespace for the ``with`` block."""
        libc = ctypes.CDLL(None, use_errno=True)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
        try:
            _setns(libc, target)
            try:
                yield
            finally:
                _setns(libc, home)
        finally:
            os.close(target)
            os.close(home)

    def destroy(self) -> None:
        """Delete the namespace (and with it the veth pair). Idempotent; never raises."""
        subprocess.run(
            ["ip", "netns", "delete", self.name],
            capture_output=True,
            timeout=_IP_TIMEOUT_S,
            check=False,
        )


def netns_unavailable() -> str | None:
    """Why namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "real-media tests need root (they create a network namespace)"
    if shutil.which("ip") is None:
        return "real-media tests need the `ip` command (iproute2)"
    return None


def create_netns() -> NetNs:
    """Create ``summon-<random>`` with the veth pair up and addressed; raises RuntimeError
    (with ``ip``'s message) when the kernel refuses. The caller must :meth:`~NetNs.destroy`."""
    name = f"summon-{secrets.token_hex(4)}"
    subnet = ipaddress.IPv4Network(f"10.77.{secrets.randbelow(250) + 1}.0/24")
    first, second = str(subnet[1]), str(subnet[2])
    ns = NetNs(name, first, second)
    _ip("netns", "add", name)
    try:
        inside = ["ip", "netns", "exec", name, "ip"]
        # Created inside the namespace: the pair never appears in the host's namespace.
        _run([*inside, "link", "add", "va", "type", "veth", "peer", "name", "vb"])
        _run([*inside, "addr", "add", f"{first}/24", "dev", "va"])
        _run([*inside, "addr", "add", f"{second}/24", "dev", "vb"])
        for dev in ("lo", "va", "vb"):
            _run([*inside, "link", "set", dev, "up"])
    except BaseException:
        ns.destroy()
        raise
    return ns


def _setns(libc: ctypes.CDLL, fd: int) -> None:
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def _ip(*args: str) -> None:
    _run(["ip", *args])


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=_IP_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip() or done.returncode}")
