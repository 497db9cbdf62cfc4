#!/usr/bin/env bash
# The bare shell-script promotion that updateserver is measured against (bench/versus.ts, issue 17):
# the minimum a careful operator would script by hand, with no checks beyond /health. For each host,
# in parallel, over one OpenSSH ControlMaster connection per host: rsync the app into the idle slot's
# directory, start it there; then poll every host's /health from here; mark the new servers up in
# HAProxy and switch the service's map entry (runtime API over socat, and the map file on disk);
# wait for the old backend's sessions to drain; stop the old slot's process on every host.
#
#   bench/baseline/promote.sh <app dir> <release> <host address>...
#
# Environment: SSH_PORT (2222), SSH_KEY, KNOWN_HOSTS, SOCKET (HAProxy admin socket), MAP_FILE,
# SERVICE (web), ROOT (/srv/web), PORT_A (8001), PORT_B (8002), HEALTH_PATH (/health),
# HEALTH_DEADLINE_S (10), DRAIN_S (5), START (the app's command; {address} {port} {slot} {release}
# are replaced), HOST_NAMES (the HAProxy server names, in the order of the addresses).
# Uses updateserver's pid files (<root>/run/<slot>.pid) so that it can stop a slot updateserver started.
set -euo pipefail

app=${1:?app dir}; release=${2:?release}; shift 2
hosts=("$@")
port=${SSH_PORT:-2222}
service=${SERVICE:-web}
root=${ROOT:-/srv/web}
read -r -a names <<< "${HOST_NAMES:-}"
start=${START:-'node server.mjs --host {address} --port {port} --slot {slot} --release {release}'}
ctl=$(mktemp -d /tmp/baseline-ssh.XXXXXX)
ssh_opts=(-i "$SSH_KEY" -o "UserKnownHostsFile=$KNOWN_HOSTS" -o StrictHostKeyChecking=yes -o BatchMode=yes
  -o IdentitiesOnly=yes -p "$port" -o ControlMaster=auto -o "ControlPath=$ctl/%h" -o ControlPersist=60)

lb() { echo "$1" | socat - "UNIX-CONNECT:$SOCKET"; }
finish() {
  for h in "${hosts[@]}"; do ssh "${ssh_opts[@]}" -O exit "root@$h" 2>/dev/null || true; done
  rm -rf "$ctl"
}
trap finish EXIT

live=$(lb "show map $MAP_FILE" | awk -v k="$service" '$2 == k { print $3 }')
if [ "$live" = "${service}_b" ]; then old=b; new=a; new_port=${PORT_A:-8001}; else old=a; new=b; new_port=${PORT_B:-8002}; fi

# One master connection per host, opened in parallel; every later ssh and rsync rides on it.
for h in "${hosts[@]}"; do ssh "${ssh_opts[@]}" -fN -M "root@$h" & done
wait

deploy() {
  local h=$1 dir="$root/baseline/$new"
  local cmd=${start//\{address\}/$h}; cmd=${cmd//\{port\}/$new_port}; cmd=${cmd//\{slot\}/$new}; cmd=${cmd//\{release\}/$release}
  rsync -a --delete -e "ssh ${ssh_opts[*]}" --rsync-path="mkdir -p $dir && rsync" "$app/" "root@$h:$dir/"
  ssh "${ssh_opts[@]}" "root@$h" "mkdir -p $root/run && cd $dir && { setsid bash -c '$cmd' </dev/null >>$root/run/$new.log 2>&1 & echo \$! > $root/run/$new.pid; }"
}
for h in "${hosts[@]}"; do deploy "$h" & done
for job in $(jobs -p); do wait "$job"; done

deadline=$((SECONDS + ${HEALTH_DEADLINE_S:-10}))
for h in "${hosts[@]}"; do
  until curl -fsS -o /dev/null --max-time 1 "http://$h:$new_port${HEALTH_PATH:-/health}"; do
    [ $SECONDS -lt $deadline ] || { echo "$h: /health did not pass" >&2; exit 1; }
    sleep 0.05
  done
done

for n in "${names[@]}"; do lb "set server ${service}_$new/$n health up" >/dev/null; done
lb "set map $MAP_FILE $service ${service}_$new" >/dev/null
sed -i "s/^$service ${service}_$old\$/$service ${service}_$new/" "$MAP_FILE"

# Drain: the old backend's current sessions (show stat's scur, field 5, on its BACKEND row) reach 0.
deadline=$((SECONDS + ${DRAIN_S:-5}))
while [ "$(lb 'show stat' | awk -F, -v b="${service}_$old" '$1 == b && $2 == "BACKEND" { print $5 }')" != 0 ] && [ $SECONDS -lt $deadline ]; do
  sleep 0.05
done

stop() {
  ssh "${ssh_opts[@]}" "root@$1" "p=\$(cat $root/run/$old.pid 2>/dev/null) || exit 0; kill -TERM -- -\$p 2>/dev/null || kill -TERM \$p 2>/dev/null; for i in \$(seq 100); do kill -0 \$p 2>/dev/null || break; sleep 0.05; done; rm -f $root/run/$old.pid"
}
for h in "${hosts[@]}"; do stop "$h" & done
for job in $(jobs -p); do wait "$job"; done
