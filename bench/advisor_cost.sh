#!/bin/bash
# Instructions per extended pgbench -S transaction through pgsidecar (stats on), advisor on vs off.
# Needs the pgsidecar_perf database that `bench/run --instructions` prepares.
BIN=${BIN:-$(cd "$(dirname "$0")/.." && pwd)/target/release/pgsidecar}
W=$(mktemp -d); cd $W
for adv in true false; do
  for n in 200 1000; do
    port=$((17000 + RANDOM % 1000)); admin=$((18000 + RANDOM % 1000))
    cat > c.toml <<T
listen = "127.0.0.1:$port"
admin_listen = "127.0.0.1:$admin"
upstream = "postgres://postgres@127.0.0.1:5432/postgres"
auth_type = "trust"
pool_mode = "transaction"
pool_size = 20
shutdown_timeout = "2s"
stats = true
[advisor]
enabled = $adv
T
    out=$W/cg-$adv-$n.out
    valgrind --tool=callgrind --callgrind-out-file=$out $BIN --config c.toml > log-$adv-$n 2>&1 &
    pid=$!
    for i in $(seq 1 120); do pg_isready -q -h 127.0.0.1 -p $port && break; sleep 0.5; done
    pgbench -h 127.0.0.1 -p $port -U postgres -n -S -M extended -c 8 -j 2 -t $n pgsidecar_perf > pgb-$adv-$n 2>&1 || echo "pgbench failed $adv $n"
    kill -INT $pid; wait $pid
    t=$(grep -E "^(summary|totals):" $out | head -1 | awk '{print $2}')
    echo "$adv $n $t"
  done
done | tee res.txt
python3 - <<P
r={}
for l in open('$W/res.txt'):
    a,n,t=l.split(); r[(a,int(n))]=int(t)
for a in ('true','false'):
    print('advisor', a, round((r[(a,1000)]-r[(a,200)])/(800*8)), 'instructions/tx')
P
