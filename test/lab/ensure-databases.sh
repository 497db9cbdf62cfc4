#!/usr/bin/env bash
# Starts the database servers that the integration tier and the demo talk to, where they do not run
# yet, saying so: PostgreSQL (127.0.0.1:5432, trust auth for postgres over TCP) and MariaDB
# (127.0.0.1:3306, root without password). Silent when they already answer.
#   bash test/lab/ensure-databases.sh [postgres] [mysql]     (default: both)
# The packages are installed by scripts/bootstrap.mjs (npm test, npm run demo) or test/lab/require-root.mjs.
set -u
want=("$@")
[ ${#want[@]} -eq 0 ] && want=(postgres mysql)
wants() { [[ " ${want[*]} " == *" $1 "* ]]; }

pg_up() { command -v pg_isready >/dev/null && pg_isready -q -h 127.0.0.1 -p 5432; }
my_up() { command -v mysqladmin >/dev/null && mysqladmin -h 127.0.0.1 -uroot status >/dev/null 2>&1; }
fix() { echo "ensure-databases: $1: run \`node scripts/bootstrap.mjs test\` (it installs and starts what is missing), or $2" >&2; exit 1; }

if wants postgres && ! pg_up; then
  cluster=$(ls /etc/postgresql 2>/dev/null | head -1)
  [ -n "$cluster" ] || fix "PostgreSQL is not installed" "apt-get install -y postgresql"
  echo "ensure-databases: starting PostgreSQL $cluster (the slot databases, on 127.0.0.1:5432)"
  pg_ctlcluster --skip-systemctl-redirect "$cluster" main start || true
  for _ in $(seq 1 50); do pg_up && break; sleep 0.2; done
fi
if wants postgres && pg_up && ! psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1; then
  # The tests and the demo connect over TCP as postgres without a password, as on the project's machines.
  hba=$(ls /etc/postgresql/*/main/pg_hba.conf | head -1)
  echo "ensure-databases: allowing trust authentication for 127.0.0.1 in $hba (the demo and the tests connect as postgres without a password)"
  sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main reload || true
  for _ in $(seq 1 25); do psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1 && break; sleep 0.2; done
fi

if wants mysql && ! my_up; then
  [ -x /usr/sbin/mariadbd ] || command -v mariadbd >/dev/null || fix "MariaDB is not installed" "apt-get install -y mariadb-server"
  echo "ensure-databases: starting MariaDB (the MySQL-engine tests, on 127.0.0.1:3306)"
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
  for _ in $(seq 1 75); do my_up && break; sleep 0.2; done
fi

if wants postgres; then
  pg_up || { echo "ensure-databases: PostgreSQL does not answer on 127.0.0.1:5432; its log is in /var/log/postgresql/" >&2; exit 1; }
  psql -h 127.0.0.1 -U postgres -c 'select 1' >/dev/null 2>&1 || { echo "ensure-databases: PostgreSQL on 127.0.0.1:5432 refuses user postgres without a password: add 'host all all 127.0.0.1/32 trust' to its pg_hba.conf" >&2; exit 1; }
fi
if wants mysql; then
  my_up || { echo "ensure-databases: MariaDB does not answer on 127.0.0.1:3306 as root without a password" >&2; exit 1; }
fi
exit 0
