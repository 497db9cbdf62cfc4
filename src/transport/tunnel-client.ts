/*
 * The "remote shell" rsync runs when updateserver relays code (see tunnel.ts), as a bash script: rsync
 * runs it as `bash -c 'eval "$UPDATESERVER_TUNNEL_CLIENT"' updateserver-tunnel <host> <command...>`
 * (commands/relay.ts), with the script itself in UPDATESERVER_TUNNEL_CLIENT and
 * UPDATESERVER_TUNNEL="<port> <token> <dir>" in its environment, so rsync's argv is the same text in
 * every run and is exactly what the plan prints. It connects to the tunnel on 127.0.0.1 twice (the command's stdin, and the request
 * with the command's output), and relays its stdin and stdout through them. When the remote command has exited the tunnel
 * closes the socket, having written the command's stderr and exit status to <dir>/<id>.err|.status;
 * the script passes those on, like ssh does.
 */
export const TUNNEL_ENV = 'UPDATESERVER_TUNNEL';
/** The variable that carries TUNNEL_CLIENT itself to rsync's remote shell (commands/relay.ts TUNNEL_RSH). */
export const TUNNEL_CLIENT_ENV = 'UPDATESERVER_TUNNEL_CLIENT';

export const TUNNEL_CLIENT = `#!/bin/bash
# updateserver's rsync remote shell: see src/transport/tunnel.ts.
read -r port token dir <<<"\${${TUNNEL_ENV}:-}"
if [ -z "$token" ] || [ $# -lt 2 ]; then echo "updateserver tunnel: run by rsync within updateserver only" >&2; exit 255; fi
host=$1; shift
# Unique among this run's requests (the result files of earlier ones stay until the tunnel closes).
id="$$.$RANDOM$RANDOM"
# Two connections: "out" carries the request and the command's output; "in" carries stdin, in the
# background (with stdin given explicitly: a background job's is /dev/null otherwise). When stdin ends,
# that subshell exits and its connection closes: the remote command sees the end of its input. The
# subshell becomes cat (exec), so that the kill below ends the relay itself: an orphaned cat would keep
# rsync's stdin open and rsync blocked writing to it after the remote command has gone.
{
  exec 4<>"/dev/tcp/127.0.0.1/$port" || exit 255
  printf '%s\\t%s\\tin\\t%s\\t\\n' "$token" "$id" "$host" >&4
  exec cat >&4 2>/dev/null
} <&0 &
in=$!
exec 3<>"/dev/tcp/127.0.0.1/$port" || { echo "updateserver tunnel: cannot connect to 127.0.0.1:$port" >&2; kill "$in" 2>/dev/null; exit 255; }
printf '%s\\t%s\\tout\\t%s\\t%s\\n' "$token" "$id" "$host" "$*" >&3
# The output until the tunnel closes the connection, after the remote command has exited.
cat <&3
kill "$in" 2>/dev/null
exec 3>&-
# Read with builtins, not cat: rsync starts this for every host of a run, and a program start is the
# costly part. Remote stderr is text (rsync's messages). The files stay in the tunnel's private
# directory, which the tunnel removes when it closes.
if [ -s "$dir/$id.err" ]; then
  while IFS= read -r line || [ -n "$line" ]; do printf '%s\\n' "$line" >&2; done < "$dir/$id.err"
fi
status=255
[ -f "$dir/$id.status" ] && read -r status < "$dir/$id.status"
exit "$status"
`;
