# initdb, `pg_ctl start` (a postmaster forking its backends, listening on a unix socket and on
# TCP 127.0.0.1), psql over each, then `pg_ctl stop`; on any failure the server is stopped
# too. $1: the data directory to create, $2: the server's bin directory, $3: the TCP port,
# $4: the unix socket's directory. pg_ctl's progress dots (one a second), paths and the port
# are blanked.
set -e
data=$1 bin=$2 port=$3 sockdir=$4
blank() { sed -e 's/\.\.\.*/.../' -e "s|:$port |:PORT |" -e "s|$data|DATADIR|g" -e "s|$sockdir|SOCKDIR|g"; }
psql() { "$bin/psql" -X -At -d postgres -p "$port" "$@"; }
"$bin/initdb" -D "$data" -A trust --no-sync -E UTF8 --locale=C.UTF-8 >/dev/null 2>&1
trap '"$bin/pg_ctl" -D "$data" -m immediate stop >/dev/null 2>&1 || :' EXIT
"$bin/pg_ctl" -D "$data" -w -l "$data/server.log" \
    -o "-p $port -k $sockdir -c listen_addresses=127.0.0.1 -c max_connections=10" start | blank
"$bin/pg_isready" -h "$sockdir" -p "$port" | blank
"$bin/pg_isready" -h 127.0.0.1 -p "$port" | blank
psql -h "$sockdir" -c "select 6*7 as answer, inet_server_addr() is null as over_unix_socket"
psql -h "$sockdir" -c "create table t(a int); insert into t select generate_series(1,1000)"
psql -h 127.0.0.1 -c "select host(inet_server_addr()), inet_server_port() = $port,
    host(inet_client_addr()), count(*), sum(a) from t"
psql -h 127.0.0.1 -c "select count(*) from pg_stat_activity where backend_type = 'client backend'"
psql -h "$sockdir" -c "\copy t to stdout" | sha256sum
"$bin/pg_ctl" -D "$data" -w stop | blank
st=0; "$bin/pg_ctl" -D "$data" status || st=$?
echo "pg_ctl status: $st"
grep -c "database system is shut down" "$data/server.log"
