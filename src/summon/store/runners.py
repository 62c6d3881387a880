"""How store operations reach the database.

Every store operation is one plain function of a SQLAlchemy ``Connection`` (a unit of work). A
runner executes it in a transaction and hands the result back to the event loop:

- :class:`SQLiteRunner` — SQLite allows one writer at a time, so writes go to **one writer
  thread** that owns the only write connection. It takes whatever jobs are queued (up to
  :data:`MAX_BATCH`), runs them in one ``BEGIN IMMEDIATE`` transaction, commits once, and only
  then answers each caller (group commit: one commit, one thread hand-off per operation, however
  busy). If a job fails, the batch is rolled back and its jobs run again one transaction each, so
  the failure is that job's alone (jobs are plain database work, safe to run again). Reads run on
  a small pool of reader threads, each with its own connection; with WAL they never wait for the
  writer. Another process writing the same file (the CLI while ``serve`` runs) waits on
  ``busy_timeout``.
- :class:`PostgresRunner` — asyncpg through SQLAlchemy's async engine; the same functions run
  with ``run_sync``, one transaction each.
"""

from __future__ import annotations

import asyncio
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

T = TypeVar("T")
Job = Callable[[Connection], T]

MAX_BATCH = 256
PG_FLUSHERS = 4
READERS = 4
SQLITE_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",  # durable across process crashes; WAL keeps the file consistent
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=10000",
    "PRAGMA cache_size=-32000",
)


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


#: JSON columns are (de)serialised with orjson: several times faster than the standard library.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sqlite_sync_url(url: str) -> str:
    return "sqlite://" + url.split("://", 1)[1]


def postgres_async_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://", "postgresql+psycopg://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix):]
    return url


class Runner(ABC):
    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def write(self, job: Job[T]) -> T:
        """Run ``job`` in a write transaction; its result once committed, or its exception
        (and then nothing it did is kept)."""

    @abstractmethod
    async def read(self, job: Job[T]) -> T:
        """Run ``job`` in a read transaction (one consistent snapshot)."""


def make_runner(url: str) -> Runner:
    return SQLiteRunner(url) if is_sqlite(url) else PostgresRunner(url)


def _resolve(future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    """Answer a caller, unless it stopped waiting (cancelled): the work is done regardless."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


# -- SQLite -----------------------------------------------------------------------------------------
def sqlite_engine(url: str, begin: str, extra_pragmas: tuple[str, ...] = ()) -> sa.Engine:
    """A pysqlite engine whose transactions start with ``begin`` (we, not the driver, decide)."""
    engine = sa.create_engine(
        sqlite_sync_url(url), poolclass=sa.NullPool, connect_args={"check_same_thread": False}, **JSON_CODEC
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (*SQLITE_PRAGMAS, *extra_pragmas):
            cursor.execute(pragma)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


class SQLiteRunner(Runner):
    """See the module docstring. Writes: group commit on the event loop. Reads: reader threads.
    Checkpoints (the only step that waits for the disk): a background thread."""

    def __init__(self, url: str, checkpoint_every_s: float = 1.0) -> None:
        self.url = url
        self._checkpoint_every_s = checkpoint_every_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: Connection | None = None
        self._pending: list[tuple[Job[Any], asyncio.Future[Any]]] = []
        self._flush_scheduled = False
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_connections: list[Connection] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._checkpointer: threading.Thread | None = None
        # Checkpoints fsync; the writer must never wait for the disk, so a thread does them.
        self._write_engine = sqlite_engine(url, "BEGIN IMMEDIATE", ("PRAGMA wal_autocheckpoint=0",))
        self._read_engine = sqlite_engine(url, "BEGIN")

    async def start(self) -> None:
        if self._conn is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._conn = self._write_engine.connect()
        self._readers = ThreadPoolExecutor(READERS, thread_name_prefix="summon-sqlite-reader")
        self._stop.clear()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="summon-sqlite-checkpoint", daemon=True)
        self._checkpointer.start()

    async def close(self) -> None:
        if self._conn is None:
            return
        while self._pending or self._flush_scheduled:
            await asyncio.sleep(0)
        self._stop.set()
        checkpointer, self._checkpointer = self._checkpointer, None
        readers, self._readers = self._readers, None
        loop = asyncio.get_running_loop()
        if checkpointer is not None:
            await loop.run_in_executor(None, checkpointer.join)
        if readers is not None:
            await loop.run_in_executor(None, readers.shutdown)
        with self._lock:
            for conn in self._reader_connections:
                conn.close()
            self._reader_connections.clear()
        conn, self._conn = self._conn, None
        conn.close()  # the last connection to close checkpoints the WAL into the database
        self._write_engine.dispose()
        self._read_engine.dispose()

    async def write(self, job: Job[T]) -> T:
        if self._conn is None or self._loop is None:
            raise RuntimeError("store not started")
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append((job, future))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """Run every job queued since the last flush: together in one transaction when all
        succeed; if one fails, the batch is rolled back and each job runs on its own, so the
        failure is that job's alone (jobs are plain database work, safe to run again)."""
        self._flush_scheduled = False
        batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
        if self._pending:
            self._flush_scheduled = True
            assert self._loop is not None
            self._loop.call_soon(self._flush)
        conn = self._conn
        assert conn is not None
        if len(batch) > 1:
            try:
                with conn.begin():
                    results = [job(conn) for job, _ in batch]
            except Exception:
                pass
            else:
                for (_, future), result in zip(batch, results, strict=True):
                    _resolve(future, result)
                return
        for job, future in batch:
            try:
                with conn.begin():
                    result = job(conn)
            except Exception as exc:
                _resolve(future, error=exc)
            else:
                _resolve(future, result)

    async def read(self, job: Job[T]) -> T:
        if self._readers is None:
            raise RuntimeError("store not started")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read_one, job)

    def _read_one(self, job: Job[T]) -> T:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._read_engine.connect()
            with self._lock:
                self._reader_connections.append(conn)
        with conn.begin():
            return job(conn)

    def _checkpoint_loop(self) -> None:
        conn = self._read_engine.connect()
        try:
            while not self._stop.wait(self._checkpoint_every_s):
                # PASSIVE never blocks the writer; it copies what it can and leaves the rest.
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()


# -- PostgreSQL -------------------------------------------------------------------------------------
class PostgresRunner(Runner):
    """asyncpg through SQLAlchemy's async engine, with group commit for writes: jobs queued while
    a batch is running form the next batch, and up to :data:`PG_FLUSHERS` batches are in flight,
    so one can execute while another waits for its commit to reach the disk."""

    def __init__(self, url: str, pool_size: int = 10) -> None:
        self.url = postgres_async_url(url)
        self._pool_size = pool_size
        self._engine: AsyncEngine | None = None
        self._pending: list[tuple[Job[Any], asyncio.Future[Any]]] = []
        self._flushers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        if self._engine is None:
            self._engine = create_async_engine(self.url, pool_size=self._pool_size, max_overflow=10, **JSON_CODEC)

    async def close(self) -> None:
        while self._flushers:
            await asyncio.gather(*self._flushers, return_exceptions=True)
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    async def write(self, job: Job[T]) -> T:
        if self._engine is None:
            raise RuntimeError("store not started")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((job, future))
        if len(self._flushers) < PG_FLUSHERS:
            task = asyncio.create_task(self._flush())
            self._flushers.add(task)
            task.add_done_callback(self._flushers.discard)
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            if len(batch) > 1:
                try:
                    results = await self._transaction(lambda conn: [job(conn) for job, _ in batch])
                except Exception:
                    pass  # one failed (or a deadlock between batches): run each on its own
                else:
                    for (_, future), result in zip(batch, results, strict=True):
                        _resolve(future, result)
                    continue
            for job, future in batch:
                try:
                    result = await self._transaction(job)
                except Exception as exc:
                    _resolve(future, error=exc)
                else:
                    _resolve(future, result)

    async def _transaction(self, job: Job[T]) -> T:
        assert self._engine is not None, "store not started"
        async with self._engine.begin() as conn:
            return await conn.run_sync(job)

    async def read(self, job: Job[T]) -> T:
        if self._engine is None:
            raise RuntimeError("store not started")
        return await self._transaction(job)
