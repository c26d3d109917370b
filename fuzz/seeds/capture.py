#!/usr/bin/env python3
"""Regenerates the seed corpora in fuzz/corpus/ from real traffic.

Runs psql and pgbench through a recording TCP relay in front of the PostgreSQL on
127.0.0.1:5432, then writes what the clients and the server sent, in the input format of
each target (see the doc comment at the top of each fuzz_targets/*.rs). The SQL seeds
for the lexer and splitter come from the same sessions plus statements that exercise
the lexer's corner cases. Usage: python3 fuzz/seeds/capture.py (from the repository).
"""

import hashlib
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(os.path.dirname(HERE), "corpus")
PG = ("127.0.0.1", 5432)


def relay(sessions):
    """Listens on a free port; records each connection as [(direction, bytes)...]."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)

    def pump(src, dst, log, direction, lock):
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not data:
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            with lock:
                log.append((direction, data))
            dst.sendall(data)

    def serve():
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            server = socket.create_connection(PG)
            log, lock = [], threading.Lock()
            sessions.append(log)
            for args in ((client, server, log, "c", lock), (server, client, log, "s", lock)):
                threading.Thread(target=pump, args=args, daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return listener


SQL = [
    "select 1",
    "SELECT abalance FROM pgbench_accounts WHERE aid = 42; select now()",
    "create temp table fz(id int primary key, v text, j jsonb); "
    "insert into fz values (1, 'a''b', '{\"k\": [1,2]}'), (2, E'c\\\\n', null); "
    "update fz set v = $$x;y$$ where id in (1, 2, 3); delete from fz where id = 2; "
    "select * from fz",
    "select repeat('x', 40000) as big",
    "select 1/0",
    "set application_name = 'fuzz seed'; show application_name",
    "do $body$ begin raise notice 'hello %', 1; end $body$",
    "begin; select 1; commit",
    "begin; select nosuchcolumn; rollback",
    "copy (select g, md5(g::text) from generate_series(1, 50) g) to stdout",
    "/* comment /* nested */ */ select U&\"d\\0061t\\+000061\" from (values (1)) v(\"d\\0061t\\+000061\") -- tail",
    "create or replace function pg_temp.fz_f(a int) returns int language sql "
    "begin atomic select a + 1; select a + 2; end; select pg_temp.fz_f(1)",
    "select x'1F', b'101', 0x1F, 1_000, 1.5e-3, .5, 1..2 from generate_series(1,1) where 1 <> 2 and 'a' ~~ 'b'",
    "select array[1,2,3][2], (1, 2) = (1, 2), '{1}'::int[] @> '{1}'",
]


def run_clients(port):
    env = dict(os.environ, PGSSLMODE="disable", PGCONNECT_TIMEOUT="5")
    base = ["-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    for sql in SQL:
        subprocess.run(["psql", *base, "-d", "postgres", "-X", "-q", "-c", sql],
                       env=env, capture_output=True, timeout=30)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as script:
        script.write("\\set aid random(1, 1000)\nSELECT :aid + 1, 'v' || :aid;\n"
                     "BEGIN;\nSELECT :aid;\nEND;\n")
    for mode in ("simple", "extended", "prepared"):
        subprocess.run(["pgbench", *base, "-n", "-M", mode, "-t", "3", "-f", script.name,
                        "postgres"], env=env, capture_output=True, timeout=60)
    os.unlink(script.name)


def frames(stream):
    """Splits tagged protocol bytes into (tag, body) frames; stops at a partial one."""
    out, pos = [], 0
    while pos + 5 <= len(stream):
        (n,) = struct.unpack(">I", stream[pos + 1:pos + 5])
        if pos + 1 + n > len(stream):
            break
        out.append((stream[pos:pos + 1], stream[pos + 5:pos + 1 + n]))
        pos += 1 + n
    return out


def compress(data):
    """Encodes runs of 16+ equal bytes as `0xFE hi lo fill` (fuzz_targets/common.rs)."""
    out, i = bytearray(), 0
    while i < len(data):
        j = i
        while j < len(data) and data[j] == data[i] and j - i < 0xFFFF:
            j += 1
        if j - i >= 16 or data[i] == 0xFE:
            out += bytes([0xFE, (j - i) >> 8, (j - i) & 0xFF, data[i]])
            i = j
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def write(target, data):
    directory = os.path.join(CORPUS, target)
    os.makedirs(directory, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def startup_length(stream):
    """Length of the untagged packets a client opens with (SSLRequest, StartupMessage)."""
    pos = 0
    while pos + 8 <= len(stream):
        (n, code) = struct.unpack(">Ii", stream[pos:pos + 8])
        pos += n
        if code != 80877103:
            break
    return pos


def emit(sessions):
    for log in sessions:
        client = b"".join(d for (w, d) in log if w == "c")
        opening = startup_length(client)
        write("startup", client[:opening])
        for tag, body in frames(client[opening:]):
            if tag == b"p":
                write("startup", b"\0\0\0\0" + body)
        # Frontend framing: max_message_size selector 4 (1 MiB), a boundary seed.
        write("frontend_frames", bytes([4, len(log) & 0xFF]) + compress(client[opening:]))
        script = bytearray([len(client) & 0xFF])
        pending, skip = b"", opening
        for (who, data) in log:
            if who == "c":
                pending += data
                if skip:
                    cut = min(skip, len(pending))
                    pending, skip = pending[cut:], skip - cut
                for tag, body in frames(pending):
                    script += b"c" + struct.pack(">H", len(body) + 1) + tag + body
                    pending = pending[5 + len(body):]
            else:
                for k in range(0, len(data), 0xFFFF):
                    chunk = compress(data[k:k + 0xFFFF])
                    script += b"s" + struct.pack(">H", len(chunk)) + chunk
        write("backend_relay", bytes(script))
        for tag, body in frames(client[opening:]):
            if tag in (b"Q", b"P"):
                text = body.split(b"\0")[1 if tag == b"P" else 0]
                write("lexer", text)
                write("split", text)


def main():
    sessions = []
    listener = relay(sessions)
    run_clients(listener.getsockname()[1])
    listener.close()
    if not sessions:
        sys.exit("no sessions were recorded: is PostgreSQL up on 127.0.0.1:5432?")
    emit(sessions)
    # Statements whose lexing is tricky, beyond what the sessions sent.
    extra = [
        "select $tag$ a $ b $$ c $tag$, $1, $$$$, e'\\'', 'it''s', \"q\"\"i\"",
        "select 1 -- unterminated comment",
        "select /* unterminated /* nested */",
        "select 'unterminated",
        "select 1;;; ; select 2;",
        "create function f() returns int begin atomic select 1; select case when true then 1 end; end; select 2",
        "select * from t where a in (1, 2, 3) and b in ('x', 'y') and c = any(array[1, 2])",
        "insert into t values (1, 'a'), (2, 'b'), (3, 'c') on conflict do nothing",
        "SeLeCt ÄÖ, 日本 from \"Mixed\".tbl where n::numeric(10,2) >= -1.5e+3",
    ]
    # The other opening packets, as libpq sends them.
    def packet(body):
        return struct.pack(">I", len(body) + 4) + body
    write("startup", packet(struct.pack(">i", 80877103)))
    write("startup", packet(struct.pack(">i", 80877104)))
    write("startup", packet(struct.pack(">iii", 80877102, 4242, -7)))
    write("startup", packet(struct.pack(">i", 196609) + b"user\0app\0_pq_.x\0y\0\0"))
    write("startup", packet(struct.pack(">i", 196608) + b"user\0app\0database\0db\0"
                            b"options\0-c search_path=a\0replication\0false\0\0"))
    first = b"n,,n=,r=rOprNGfwEbeRWgbNEkqO"
    write("startup", b"\0\0\0\0SCRAM-SHA-256\0" + struct.pack(">i", len(first)) + first)
    write("startup", b"\0\0\0\0md5a3556571e93b0d20722ba62be61e8c2d\0")
    for sql in extra:
        write("lexer", sql.encode())
        write("split", sql.encode())
    print("sessions:", len(sessions))


if __name__ == "__main__":
    main()
