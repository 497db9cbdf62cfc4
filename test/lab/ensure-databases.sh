#!/usr/bin/env bash
# The integration tier talks to a real PostgreSQL (127.0.0.1:5432, trust auth for postgres) and a real
# MariaDB (127.0.0.1:3306, root without password). Use them where they run; otherwise start them, or
# install and start them, and say so.
set -u

pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
my_up() { command -v mysqladmin >/dev/null && mysqladmin -h 127.0.0.1 -uroot status >/dev/null 2>&1; }

if ! pg_up; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "integration tests: installing PostgreSQL (postgresql)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq postgresql >/dev/null || { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
  fi
  echo "integration tests: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
  # The tests connect over TCP as postgres without a password, as on the project's machines.
  if ! psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1; then
    hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -1)
    echo "integration tests: allowing trust authentication on 127.0.0.1 in $hba"
    sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main reload || true
  fi
fi

if ! my_up; then
  if ! command -v mariadbd >/dev/null && [ ! -x /usr/sbin/mariadbd ]; then
    echo "integration tests: installing MariaDB (mariadb-server)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq mariadb-server >/dev/null || { apt-get update -qq && apt-get install -y -qq mariadb-server >/dev/null; }
  fi
  echo "integration tests: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  for _ in $(seq 1 75); do my_up && break; sleep 0.2; done
fi

pg_up || { echo "integration tests: PostgreSQL is not reachable on 127.0.0.1:5432" >&2; exit 1; }
my_up || { echo "integration tests: MariaDB is not reachable on 127.0.0.1:3306 as root" >&2; exit 1; }
command -v pg_dump >/dev/null && command -v pg_restore >/dev/null && command -v mysqldump >/dev/null || {
  echo "integration tests: installing the database client tools"; apt-get install -y -qq postgresql-client mariadb-client >/dev/null; }
exit 0
