"""CPU and memory of a process tree, from /proc (Linux)."""

from __future__ import annotations

import os
import subprocess

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split():
        out += tree(int(child))
    return out


def cpu_seconds(pid: int) -> float:
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    try:
        return int(open(f"/proc/{pid}/statm").read().split()[1]) * PAGE / 2**20
    except FileNotFoundError:
        return 0.0


def is_runtime(pid: int) -> bool:
    try:
        return b"summon.runtime" in open(f"/proc/{pid}/cmdline", "rb").read()
    except FileNotFoundError:
        return False
