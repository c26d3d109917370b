#!/usr/bin/env python3
"""psycopg 3 quits in the middle of COPY FROM STDIN (run by tests/it/e2e_clients.rs).

Usage: psycopg_copy_quit.py PORT TABLE

With the proxy's pool_size = 1: `cursor.execute("copy TABLE from stdin")` is refused by
psycopg (COPY needs cursor.copy()), which raises after the server entered COPY IN, and
the connection is then closed normally (Terminate). Three times over, the next
connection must get the only server within 5 s, find no lock on TABLE, and be able to
drop it at the end. Prints OK and exits 0; any failure raises.
"""

import sys

import psycopg


def main():
    port, table = sys.argv[1], sys.argv[2]
    dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres connect_timeout=5"
    for _ in range(3):
        conn = psycopg.connect(dsn, autocommit=True)
        try:
            conn.cursor().execute(f"copy {table} from stdin")
        except psycopg.ProgrammingError:
            pass
        else:
            raise AssertionError("psycopg ran COPY through execute()")
        conn.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET statement_timeout = '5s'")
            locks = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE relation = %s::regclass"
                " AND pid <> pg_backend_pid()",
                (table,),
            ).fetchone()[0]
            assert locks == 0, f"{locks} locks on {table} outlived their client"
            conn.execute(f"INSERT INTO {table} VALUES (1)")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '5s'")
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        assert rows == 3, f"expected 3 rows, found {rows}"
        conn.execute(f"DROP TABLE {table}")
    print("OK")


if __name__ == "__main__":
    main()
