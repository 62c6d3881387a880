"""Meeting drivers, one module per platform, found by platform name.

A driver module is named after its platform (``sandbox.py`` serves ``meeting_url.platform ==
"sandbox"``; ``microsoft_teams.py`` would serve ``microsoft_teams``) and exports its
:class:`summon.abc.Driver` subclass as ``DRIVER``. Adding a platform is adding that module —
nothing here changes.

Modules are imported on first use, never at import time: a driver may need heavy or optional
packages (aiortc for Janus), and a host without them simply does not offer that platform. Which
platforms a host offers is therefore a property of the installation, asked with
:func:`available_platforms`.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
import re
import subprocess
import sys

from summon.abc import Driver

__all__ = ["DriverUnavailable", "available_platforms", "driver_for", "probe_platforms"]

_PLATFORM_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
_loaded: dict[str, type[Driver] | DriverUnavailable] = {}


class DriverUnavailable(LookupError):
    """No driver for ``platform`` on this host; ``reason`` says why (unknown platform, or its
    module failed to import — e.g. a missing optional dependency)."""

    def __init__(self, platform: str, reason: str) -> None:
        self.platform, self.reason = platform, reason
        super().__init__(f"no driver for platform {platform!r}: {reason}")


def driver_for(platform: str) -> type[Driver]:
    """The driver class for ``platform``; raises :class:`DriverUnavailable`. The first call for a
    platform imports its module; the result (or the failure) is remembered."""
    cached = _loaded.get(platform)
    if cached is None:
        cached = _loaded[platform] = _load(platform)
    if isinstance(cached, DriverUnavailable):
        raise cached
    return cached


def available_platforms() -> frozenset[str]:
    """Every platform this installation can serve (imports each driver module once)."""
    names = (m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    available = set()
    for name in names:
        try:
            driver_for(name)
        except DriverUnavailable:
            continue
        available.add(name)
    return frozenset(available)


@functools.cache
def probe_platforms() -> frozenset[str]:
    """:func:`available_platforms`, found out in a child process. Importing a driver can cost
    tens of megabytes (aiortc for Janus) that the asking process — the fleet agent beside the
    API — would otherwise carry for its whole life without ever running that driver itself:
    bots run in runtime processes, which import only the drivers of the bots they host."""
    code = "import json; from summon.drivers import available_platforms as a; print(json.dumps(sorted(a())))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    return frozenset(json.loads(result.stdout.strip().splitlines()[-1]))


def _load(platform: str) -> type[Driver] | DriverUnavailable:
    # Only names of modules in this package are imported: ``platform`` comes from stored data.
    if not _PLATFORM_NAME.fullmatch(platform) or platform not in {
        m.name for m in pkgutil.iter_modules(__path__)
    }:
        return DriverUnavailable(platform, "unknown platform")
    try:
        module = importlib.import_module(f"{__name__}.{platform}")
    except Exception as exc:  # ImportError of an optional dependency, or a broken module
        return DriverUnavailable(platform, f"driver failed to load: {exc!r}")
    driver = getattr(module, "DRIVER", None)
    if not (isinstance(driver, type) and issubclass(driver, Driver)) or driver.platform != platform:
        return DriverUnavailable(platform, "module does not export a matching DRIVER")
    return driver
