#!/usr/bin/env python3
"""End-to-end check of pgsidecar with asyncpg (run by tests/it/drivers.rs).

Usage: asyncpg_check.py PORT [POOL_SIZE]

asyncpg prepares every statement by name and caches it per connection (the default
statement cache), which is what breaks transaction poolers that do not follow prepared
statements from server to server. Through the proxy on 127.0.0.1:PORT as
postgres/postgres this runs: explicit prepared statements reused across transactions,
commit and rollback, an error inside a transaction followed by rollback and further use,
COPY in (copy_records_to_table) and out (copy_from_query), SET read back by a later
statement, and 32 tasks (one connection each) running 40 transactions each over a pool
of POOL_SIZE (default 4) servers. Prints OK and exits 0; any failure raises, so the
traceback is printed and the exit status is 1.

Requires: pip install asyncpg
"""

import asyncio
import io
import os
import sys

import asyncpg

TASKS = 32
TRANSACTIONS = 40
COPY_ROWS = 1000


async def connect(port):
    # statement_cache_size is left at its default (100): every query is a named
    # prepared statement, prepared once per connection and reused.
    return await asyncpg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        database="postgres",
        server_settings={"application_name": "asyncpg_check"},
        timeout=10,
    )


def check(cond, what):
    if not cond:
        raise AssertionError(what)


async def prepared_and_transactions(port, table):
    conn = await connect(port)
    try:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, v text, b bytea)")
        insert = await conn.prepare(f"INSERT INTO {table} (id, v, b) VALUES ($1, $2, $3)")
        select = await conn.prepare(f"SELECT v, b FROM {table} WHERE id = $1")
        payload = bytes(range(256)) * 4
        async with conn.transaction():
            await insert.fetch(1, "one", payload)
            await insert.fetch(2, "two", None)
        row = await select.fetchrow(1)
        check(row["v"] == "one" and row["b"] == payload, f"committed row: {row!r}")

        # A rolled back transaction leaves nothing behind.
        tr = conn.transaction()
        await tr.start()
        await insert.fetch(3, "three", None)
        await tr.rollback()
        check(await select.fetchrow(3) is None, "rolled back insert is gone")

        # An error inside a transaction: the rest of it is refused until rolled back,
        # then the same connection and the same prepared statements work again.
        tr = conn.transaction()
        await tr.start()
        await insert.fetch(4, "four", None)
        try:
            await insert.fetch(1, "duplicate", None)
            raise AssertionError("duplicate key must fail")
        except asyncpg.UniqueViolationError:
            pass
        try:
            await select.fetchrow(1)
            raise AssertionError("an aborted transaction must refuse queries")
        except asyncpg.InFailedSQLTransactionError:
            pass
        await tr.rollback()
        check(await select.fetchrow(4) is None, "insert before the error rolled back")
        check((await select.fetchrow(2))["v"] == "two", "prepared statement usable after rollback")
        check(await conn.fetchval("SELECT $1::int * 2", 21) == 42, "cached statement after rollback")

        # A failing statement outside a transaction does not break the cached ones.
        try:
            await conn.fetchval("SELECT 1 / $1::int", 0)
            raise AssertionError("division by zero must fail")
        except asyncpg.DivisionByZeroError:
            pass
        check(await conn.fetchval("SELECT 1 / $1::int", 1) == 1, "same statement, good value")
    finally:
        await conn.close()


async def copy_in_and_out(port, table):
    conn = await connect(port)
    try:
        records = [(i, f"row {i}\twith tab") for i in range(100, 100 + COPY_ROWS)]
        status = await conn.copy_records_to_table(table, records=records, columns=["id", "v"])
        check(status == f"COPY {COPY_ROWS}", f"copy_records_to_table: {status}")
        out = io.BytesIO()
        status = await conn.copy_from_query(
            f"SELECT id, v FROM {table} WHERE id >= $1 ORDER BY id", 100, output=out, format="csv"
        )
        check(status == f"COPY {COPY_ROWS}", f"copy_from_query: {status}")
        lines = out.getvalue().decode().splitlines()
        check(len(lines) == COPY_ROWS, f"COPY TO rows: {len(lines)}")
        check(lines[0] == "100,row 100\twith tab", f"first COPY TO row: {lines[0]!r}")
        # COPY inside a transaction that is rolled back.
        async with conn.transaction():
            await conn.copy_records_to_table(table, records=[(9000, "in tx")], columns=["id", "v"])
            check(await conn.fetchval(f"SELECT v FROM {table} WHERE id = 9000") == "in tx", "copied")
        check(await conn.fetchval("SELECT 1") == 1, "usable after COPY")
    finally:
        await conn.close()


async def settings(port):
    conn = await connect(port)
    try:
        await conn.execute("SET statement_timeout = '4321ms'")
        shown = await conn.fetchval("SHOW statement_timeout")
        check(shown == "4321ms", f"SET is read back on the next statement: {shown}")
        shown = await conn.fetchval("SELECT current_setting('application_name')")
        check(shown == "asyncpg_check", f"startup setting follows the client: {shown}")
    finally:
        await conn.close()


async def worker(port, table, n, pids):
    conn = await connect(port)
    try:
        # One value per task, so a SET leaking to another client would show (never whole
        # seconds, which SHOW prints as "4s").
        timeout = f"{4001 + 3 * n}ms"
        await conn.execute(f"SET statement_timeout = '{timeout}'")
        for i in range(TRANSACTIONS):
            async with conn.transaction():
                pid = await conn.fetchval("SELECT pg_backend_pid()")
                await conn.execute(
                    f"INSERT INTO {table} (id, v) VALUES ($1, $2)",
                    10_000 + n * TRANSACTIONS + i,
                    f"t{n}",
                )
                # Transaction pooling must keep a transaction on one server.
                again = await conn.fetchval("SELECT pg_backend_pid()")
                check(pid == again, f"one server per transaction: {pid} != {again}")
                shown = await conn.fetchval("SHOW statement_timeout")
                check(shown == timeout, f"task {n} sees its own setting: {shown}")
            pids.add(pid)
            if i % 10 == 0:
                # An error in every tenth transaction, rolled back, then carry on.
                try:
                    async with conn.transaction():
                        await conn.fetchval("SELECT 1 / $1::int", 0)
                except asyncpg.DivisionByZeroError:
                    pass
            # Outside a transaction too: each statement may land on another server.
            check(await conn.fetchval("SELECT $1::int + 1", i) == i + 1, "autocommit statement")
    finally:
        await conn.close()


async def tasks_on_small_pool(port, table, pool_size):
    pids = set()
    results = await asyncio.gather(
        *(worker(port, table, n, pids) for n in range(TASKS)), return_exceptions=True
    )
    failures = [(n, r) for n, r in enumerate(results) if isinstance(r, BaseException)]
    if failures:
        n, e = failures[0]
        raise AssertionError(f"{len(failures)} tasks failed; task {n}: {e!r}") from e
    conn = await connect(port)
    try:
        count = await conn.fetchval(f"SELECT count(*) FROM {table} WHERE id >= 10000")
    finally:
        await conn.close()
    check(count == TASKS * TRANSACTIONS, f"every transaction committed: {count}")
    check(len(pids) <= pool_size, f"at most {pool_size} servers served {TASKS} clients: {pids}")


async def main():
    port = int(sys.argv[1])
    pool_size = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    table = f"asyncpg_check_{os.getpid()}"
    try:
        await prepared_and_transactions(port, table)
        await copy_in_and_out(port, table)
        await settings(port)
        await tasks_on_small_pool(port, table, pool_size)
    finally:
        conn = await connect(port)
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
        finally:
            await conn.close()
    print("OK")


if __name__ == "__main__":
    asyncio.run(main())
