# A PostgreSQL server under load: pgbench's concurrent clients over TCP (two client threads,
# four connections: four backends), a query run by parallel workers (background processes
# the postmaster forks, sharing dynamic shared memory in /dev/shm), LISTEN/NOTIFY, createdb,
# and pg_dump piped into psql. $1: the data directory to create, $2: the server's bin
# directory, $3: the TCP port, $4: the unix socket's directory. pgbench's random balances are
# left out, and of the plan (which autovacuum may change) only its workers; pids are blanked.
set -e
data=$1 bin=$2 port=$3 sockdir=$4
psql() { "$bin/psql" -X -At -p "$port" "$@"; }
"$bin/initdb" -D "$data" -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1
trap '"$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || :' EXIT
"$bin/pg_ctl" -D "$data" -w -l "$data/server.log" \
    -o "-p $port -k $sockdir -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
"$bin/pgbench" -h 127.0.0.1 -p "$port" -i -s 1 -q postgres 2>&1 | grep -c "^done"
"$bin/pgbench" -h 127.0.0.1 -p "$port" -c 4 -j 2 -t 100 postgres 2>&1 \
    | grep -E "^(number of (clients|threads|transactions|failed)|transaction type)"
parallel="set max_parallel_workers_per_gather=2; set parallel_setup_cost=0;
    set parallel_tuple_cost=0; set min_parallel_table_scan_size=0; set force_parallel_mode=on"
psql -h "$sockdir" -d postgres -q -c "$parallel" -c "explain (analyze, costs off, timing off,
    summary off) select count(*) from pgbench_accounts" | grep -o "Workers .*"
psql -h "$sockdir" -d postgres -q -c "$parallel" \
    -c "select count(*), sum(aid), sum(bid) from pgbench_accounts"
psql -h 127.0.0.1 -d postgres -c "listen ch" -c "select pg_notify('ch', 'payload')" \
    | sed 's/PID [0-9]*/PID N/'
"$bin/createdb" -h "$sockdir" -p "$port" copy
"$bin/pg_dump" -h 127.0.0.1 -p "$port" postgres | psql -h "$sockdir" -d copy -q >/dev/null
psql -h "$sockdir" -d copy -c "select count(*), sum(bid) from pgbench_accounts"
"$bin/pg_ctl" -D "$data" -w stop >/dev/null
echo stopped
