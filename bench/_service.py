"""Start and stop a real ``summon serve`` for a benchmark."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

PG_ADMIN = os.environ.get("SUMMON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RunningService:
    process: subprocess.Popen[bytes]
    url: str
    key: str
    env: dict[str, str]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()


def postgres_database() -> tuple[str, str]:
    """Create a throw-away database; returns (url, name)."""
    import asyncio

    import asyncpg

    name = f"summon_bench_{os.getpid()}"

    async def create() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name, name


def drop_postgres_database(name: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        conn = await asyncpg.connect(PG_ADMIN)
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()

    asyncio.run(drop())


def start(extra_env: dict[str, str] | None = None, roles: str | None = None,
          again: RunningService | None = None) -> RunningService:
    """Start ``summon serve`` on a fresh data dir; or, with ``again``, on that service's data
    (a restart: same database, same key)."""
    port = free_port()
    if again is not None:
        env, key = again.env, again.key
    else:
        data_dir = Path(tempfile.mkdtemp(prefix="summon-bench-"))
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("SUMMON_")},
            "SUMMON_DATA_DIR": str(data_dir),
            "SUMMON_RATE_LIMITS": "off",
            "SUMMON_LOG_LEVEL": "warning",
            **(extra_env or {}),
        }
        key = subprocess.run(
            [sys.executable, "-m", "summon", "keys", "create", "--workspace", "bench"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.strip()
    command = [sys.executable, "-m", "summon", "serve", "--port", str(port)]
    if roles:
        command += ["--roles", roles]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            raise SystemExit("summon serve did not start")
        time.sleep(0.05)
    assert re.fullmatch(r"sk_\S+", key)
    return RunningService(process, url, key, env)
