# initdb, then a standalone backend (postgres --single) answering queries: PostgreSQL's
# System V shared memory segment, its shared anonymous memory and the POSIX semaphores
# (futexes) in it, without the sockets a server needs. $1: the data directory to create,
# $2: the server's bin directory. Paths and log lines (times, pids) are blanked.
set -e
"$2/initdb" -D "$1" -A trust --no-sync -E UTF8 --locale=C.UTF-8 2>&1 \
    | grep -v "pg_ctl\|^$" | sed "s|$1|DATADIR|g"
echo "select 6*7 as answer; create table t(a int); insert into t select generate_series(1,1000);
select count(*), sum(a) from t; select count(*) > 0 as has_catalog from pg_class;" \
    | "$2/postgres" --single -D "$1" postgres 2>&1 | sed 's/[0-9]\{4\}-[0-9][0-9]-[0-9][0-9] .*/LOG/'
