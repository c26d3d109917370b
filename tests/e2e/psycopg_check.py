#!/usr/bin/env python3
"""End-to-end check of pgsidecar with psycopg 3 (run by tests/it/e2e_clients.rs).

Usage: psycopg_check.py PORT [POOL_SIZE]

Connects to the proxy on 127.0.0.1:PORT as postgres/postgres, with every statement
prepared (prepare_threshold=0), and exercises autocommit and transactions, server-side
parameters, a binary bytea parameter, an error inside a transaction followed by a
rollback, COPY in and out, pipeline mode, SET then read back, and 32 threads running 50
transactions each over the proxy's pool of POOL_SIZE (default 4) servers. Prints OK and
exits 0; any failure raises, so the traceback is printed and the exit status is 1.

Requires: pip install "psycopg[binary]"
"""

import os
import sys
import threading

import psycopg
from psycopg import errors, sql

THREADS = 32
TRANSACTIONS = 50
COPY_ROWS = 1000


def connect(port, **kwargs):
    # Every statement prepared (named prepared statements from the first execution): the
    # proxy renames them per client and prepares them again on each server it lands on.
    return psycopg.connect(
        host="127.0.0.1",
        port=port,
        user="postgres",
        dbname="postgres",
        application_name="psycopg_check",
        prepare_threshold=0,
        connect_timeout=10,
        **kwargs,
    )


def check(cond, what):
    if not cond:
        raise AssertionError(what)


def autocommit_and_params(port, table):
    with connect(port, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (id int PRIMARY KEY, v text, b bytea)").format(table)
        )
        row = conn.execute("SELECT %s::int + %s::int, %s::text || 'x'", (40, 2, "ab")).fetchone()
        check(row == (42, "abx"), f"server-side parameters: {row}")
        payload = bytes(range(256)) * 4
        conn.execute(
            sql.SQL("INSERT INTO {} (id, v, b) VALUES (%s, %s, %b)").format(table),
            (1, "bytes", payload),
        )
        got = conn.execute(
            sql.SQL("SELECT b FROM {} WHERE id = %s").format(table), (1,), binary=True
        ).fetchone()[0]
        check(bytes(got) == payload, "binary bytea parameter round-trips")


def transactions_and_errors(port, table):
    with connect(port) as conn:
        with conn.transaction():
            conn.execute(sql.SQL("INSERT INTO {} (id, v) VALUES (2, 'two')").format(table))
            conn.execute(sql.SQL("UPDATE {} SET v = 'TWO' WHERE id = 2").format(table))
        # An error inside a transaction: the transaction is aborted until rolled back.
        conn.execute(sql.SQL("INSERT INTO {} (id, v) VALUES (3, 'three')").format(table))
        try:
            conn.execute("SELECT 1 / 0")
            raise AssertionError("division by zero must fail")
        except errors.DivisionByZero:
            pass
        check(conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR, "aborted")
        try:
            conn.execute("SELECT 1")
            raise AssertionError("an aborted transaction must refuse queries")
        except errors.InFailedSqlTransaction:
            pass
        conn.rollback()
        rows = conn.execute(sql.SQL("SELECT id, v FROM {} ORDER BY id").format(table)).fetchall()
        check(rows == [(1, "bytes"), (2, "TWO")], f"rolled back insert is gone: {rows}")
        conn.commit()


def copy_in_and_out(port, table):
    with connect(port, autocommit=True) as conn:
        cur = conn.cursor()
        query = sql.SQL("COPY {} (id, v) FROM STDIN").format(table)
        with cur.copy(query) as copy:
            for i in range(100, 100 + COPY_ROWS):
                copy.write_row((i, f"row {i}\twith tab"))
        check(cur.rowcount == COPY_ROWS, f"COPY FROM count: {cur.rowcount}")
        out = []
        query = sql.SQL("COPY (SELECT id, v FROM {} WHERE id >= 100 ORDER BY id) TO STDOUT")
        with cur.copy(query.format(table)) as copy:
            copy.set_types(["int4", "text"])
            for row in copy.rows():
                out.append(row)
        expected = [(i, f"row {i}\twith tab") for i in range(100, 100 + COPY_ROWS)]
        check(out == expected, f"COPY TO returns what went in ({len(out)} rows)")
        check(conn.execute("SELECT 1").fetchone() == (1,), "usable after COPY")


def pipeline_and_settings(port, table):
    with connect(port, autocommit=True) as conn:
        with conn.pipeline():
            for i in range(20):
                conn.execute(
                    sql.SQL("INSERT INTO {} (id, v) VALUES (%s, %s)").format(table),
                    (5000 + i, "pipe"),
                )
            cur = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE v = 'pipe'").format(table))
        check(cur.fetchone()[0] == 20, "every pipelined insert ran")
        conn.execute("SET statement_timeout = '4321ms'")
        shown = conn.execute("SHOW statement_timeout").fetchone()[0]
        check(shown == "4321ms", f"SET is read back on the next statement: {shown}")


def worker(port, table, n, pids, failures):
    try:
        with connect(port) as conn:
            for i in range(TRANSACTIONS):
                with conn.transaction():
                    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                    conn.execute(
                        sql.SQL("INSERT INTO {} (id, v) VALUES (%s, %s)").format(table),
                        (10_000 + n * TRANSACTIONS + i, f"t{n}"),
                    )
                    # Transaction pooling must keep a transaction on one server.
                    again = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
                    check(pid == again, f"one server per transaction: {pid} != {again}")
                pids.add(pid)
    except BaseException as e:  # reported by the main thread
        failures.append((n, e))


def threads_on_small_pool(port, table, pool_size):
    pids, failures = set(), []
    threads = [
        threading.Thread(target=worker, args=(port, table, n, pids, failures))
        for n in range(THREADS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        n, e = failures[0]
        raise AssertionError(f"{len(failures)} threads failed; thread {n}: {e!r}") from e
    with connect(port, autocommit=True) as conn:
        count = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE id >= 10000").format(table)
        ).fetchone()[0]
    check(count == THREADS * TRANSACTIONS, f"every transaction committed: {count}")
    check(len(pids) <= pool_size, f"at most {pool_size} servers served {THREADS} clients: {pids}")


def main():
    port = int(sys.argv[1])
    pool_size = int(sys.argv[2]) if len(sys.argv) > 2 else 4
    table = sql.Identifier(f"psycopg_check_{os.getpid()}")
    try:
        autocommit_and_params(port, table)
        transactions_and_errors(port, table)
        copy_in_and_out(port, table)
        pipeline_and_settings(port, table)
        threads_on_small_pool(port, table, pool_size)
    finally:
        with connect(port, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(table))
    print("OK")


if __name__ == "__main__":
    main()
