// End-to-end check of pgsidecar with node-postgres (run by tests/it/drivers.rs).
//
// Usage: node check.mjs PORT [POOL_SIZE]
//
// node-postgres sends a named query ({ name, text, values }) as Parse with that name the
// first time on a connection and only Bind/Execute afterwards, so the proxy has to make
// the statement exist on whichever server the client lands on. Through the proxy on
// 127.0.0.1:PORT as postgres/postgres this runs: named queries reused across
// transactions, commit and rollback, an error inside a transaction followed by rollback
// and further use, COPY in and out (pg-copy-streams), SET read back by a later statement,
// and 16 clients running 40 transactions each over a pool of POOL_SIZE (default 4)
// servers. Prints OK and exits 0; a failure prints its stack and exits 1.
//
// Requires: npm ci (pg, pg-copy-streams)

import { Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";

import pg from "pg";
import copyStreams from "pg-copy-streams";

const CLIENTS = 16;
const TRANSACTIONS = 40;
const COPY_ROWS = 1000;

const port = Number(process.argv[2]);
const poolSize = Number(process.argv[3] ?? 4);
const table = `node_check_${process.pid}`;

async function connect() {
  const client = new pg.Client({
    host: "127.0.0.1",
    port,
    user: "postgres",
    database: "postgres",
    application_name: "node_check",
    connectionTimeoutMillis: 10000,
  });
  await client.connect();
  return client;
}

function check(cond, what) {
  if (!cond) throw new Error(what);
}

// The SQLSTATE of a failed query, or a failure if it did not fail.
async function sqlstate(promise) {
  try {
    await promise;
  } catch (e) {
    return e.code;
  }
  throw new Error("the query must fail");
}

const insert = (id, v) => ({
  name: "insert",
  text: `INSERT INTO ${table} (id, v) VALUES ($1, $2)`,
  values: [id, v],
});
const select = (id) => ({
  name: "select",
  text: `SELECT v FROM ${table} WHERE id = $1`,
  values: [id],
});

async function namedQueriesAndTransactions() {
  const c = await connect();
  try {
    await c.query(`CREATE TABLE ${table} (id int PRIMARY KEY, v text)`);
    await c.query("BEGIN");
    await c.query(insert(1, "one"));
    await c.query(insert(2, "two"));
    await c.query("COMMIT");
    check((await c.query(select(1))).rows[0]?.v === "one", "committed row");

    await c.query("BEGIN");
    await c.query(insert(3, "three"));
    await c.query("ROLLBACK");
    check((await c.query(select(3))).rowCount === 0, "rolled back insert is gone");

    // An error inside a transaction: the rest is refused until rolled back, then the
    // same named statements work again.
    await c.query("BEGIN");
    await c.query(insert(4, "four"));
    check((await sqlstate(c.query(insert(1, "dup")))) === "23505", "duplicate key");
    check((await sqlstate(c.query(select(1)))) === "25P02", "aborted transaction");
    await c.query("ROLLBACK");
    check((await c.query(select(4))).rowCount === 0, "insert before the error rolled back");
    check((await c.query(select(2))).rows[0]?.v === "two", "named query after rollback");

    // A named query that fails at execution, outside a transaction, stays usable.
    const divide = (d) => ({ name: "divide", text: "SELECT 10 / $1::int AS q", values: [d] });
    check((await sqlstate(c.query(divide(0)))) === "22012", "division by zero");
    check((await c.query(divide(5))).rows[0].q === 2, "same named query, good value");
  } finally {
    await c.end();
  }
}

async function copyInAndOut() {
  const c = await connect();
  try {
    const lines = [];
    for (let i = 100; i < 100 + COPY_ROWS; i++) lines.push(`${i}\trow ${i}\n`);
    const copyIn = c.query(copyStreams.from(`COPY ${table} (id, v) FROM STDIN`));
    await pipeline(Readable.from(lines), copyIn);
    check(copyIn.rowCount === COPY_ROWS, `COPY FROM count: ${copyIn.rowCount}`);

    const chunks = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        chunks.push(chunk);
        done();
      },
    });
    const query = `COPY (SELECT id, v FROM ${table} WHERE id >= 100 ORDER BY id) TO STDOUT`;
    await pipeline(c.query(copyStreams.to(query)), sink);
    const out = Buffer.concat(chunks).toString();
    check(out === lines.join(""), `COPY TO returns what went in (${out.length} bytes)`);
    check((await c.query("SELECT 1 AS one")).rows[0].one === 1, "usable after COPY");
  } finally {
    await c.end();
  }
}

async function settings() {
  const c = await connect();
  try {
    await c.query("SET statement_timeout = '4321ms'");
    const shown = (await c.query("SHOW statement_timeout")).rows[0].statement_timeout;
    check(shown === "4321ms", `SET is read back on the next statement: ${shown}`);
    const app = (await c.query({ name: "app", text: "SELECT current_setting('application_name') AS a" }))
      .rows[0].a;
    check(app === "node_check", `startup setting follows the client: ${app}`);
  } finally {
    await c.end();
  }
}

async function worker(n, pids) {
  const c = await connect();
  try {
    // One value per client (never whole seconds, which SHOW prints as "4s"), so a SET
    // leaking to another client would show.
    const timeout = `${4001 + 3 * n}ms`;
    await c.query(`SET statement_timeout = '${timeout}'`);
    const pidQuery = { name: "pid", text: "SELECT pg_backend_pid() AS pid" };
    const show = { name: "show", text: "SHOW statement_timeout" };
    for (let i = 0; i < TRANSACTIONS; i++) {
      await c.query("BEGIN");
      const pid = (await c.query(pidQuery)).rows[0].pid;
      await c.query(insert(10000 + n * TRANSACTIONS + i, `t${n}`));
      // Transaction pooling must keep a transaction on one server.
      const again = (await c.query(pidQuery)).rows[0].pid;
      check(pid === again, `one server per transaction: ${pid} != ${again}`);
      const shown = (await c.query(show)).rows[0].statement_timeout;
      check(shown === timeout, `client ${n} sees its own setting: ${shown}`);
      await c.query("COMMIT");
      pids.add(pid);
      if (i % 10 === 0) {
        // An error in every tenth transaction, rolled back, then carry on.
        await c.query("BEGIN");
        const code = await sqlstate(c.query({ name: "div", text: "SELECT 1 / $1::int", values: [0] }));
        check(code === "22012", `division by zero: ${code}`);
        await c.query("ROLLBACK");
      }
      // Outside a transaction each statement may land on another server.
      const next = await c.query({ name: "inc", text: "SELECT $1::int + 1 AS n", values: [i] });
      check(next.rows[0].n === i + 1, "autocommit named query");
    }
  } finally {
    await c.end();
  }
}

async function clientsOnSmallPool() {
  const pids = new Set();
  const results = await Promise.allSettled(Array.from({ length: CLIENTS }, (_, n) => worker(n, pids)));
  const failures = results.map((r, n) => [n, r]).filter(([, r]) => r.status === "rejected");
  if (failures.length > 0) {
    const [n, r] = failures[0];
    throw new Error(`${failures.length} clients failed; client ${n}: ${r.reason?.stack ?? r.reason}`);
  }
  const c = await connect();
  try {
    const count = Number((await c.query(`SELECT count(*) AS n FROM ${table} WHERE id >= 10000`)).rows[0].n);
    check(count === CLIENTS * TRANSACTIONS, `every transaction committed: ${count}`);
  } finally {
    await c.end();
  }
  check(pids.size <= poolSize, `at most ${poolSize} servers served ${CLIENTS} clients: ${[...pids]}`);
}

async function main() {
  try {
    await namedQueriesAndTransactions();
    await copyInAndOut();
    await settings();
    await clientsOnSmallPool();
  } finally {
    const c = await connect();
    try {
      await c.query(`DROP TABLE IF EXISTS ${table}`);
    } finally {
      await c.end();
    }
  }
  console.log("OK");
}

main().catch((e) => {
  console.error(e?.stack ?? e);
  process.exit(1);
});
