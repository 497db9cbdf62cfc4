#!/usr/bin/env node
/*
 * The "remote shell" rsync runs when updateserver relays code: instead of opening a new SSH
 * connection (a handshake and a process per transfer), it asks the running updateserver, through a
 * private UNIX socket, to run rsync's remote side over the SSH connection it already has, verified
 * against known_hosts like every other. rsync calls it as: <this> <socket> <host> <command...>.
 * Frames from the server: 1 byte type (1 stdout, 2 stderr, 3 exit status), 4 bytes length, payload.
 */
import { createConnection } from 'node:net';

const [socketPath, host, ...command] = process.argv.slice(2);
if (!socketPath || !host || command.length === 0) {
  process.stderr.write('usage: tunnel-client <socket> <host> <command...>\n');
  process.exit(255);
}
const socket = createConnection(socketPath);
let buffer = Buffer.alloc(0);
let status = 255;
socket.on('connect', () => {
  socket.write(`${JSON.stringify({ host, command: command.join(' ') })}\n`);
  process.stdin.pipe(socket);
});
socket.on('data', (chunk: Buffer) => {
  buffer = Buffer.concat([buffer, chunk]);
  while (buffer.length >= 5) {
    const len = buffer.readUInt32BE(1);
    if (buffer.length < 5 + len) break;
    const type = buffer[0];
    const payload = buffer.subarray(5, 5 + len);
    buffer = buffer.subarray(5 + len);
    if (type === 1) process.stdout.write(payload);
    else if (type === 2) process.stderr.write(payload);
    else if (type === 3) status = payload.readInt32BE(0);
  }
});
socket.on('error', (err) => { process.stderr.write(`updateserver tunnel: ${err.message}\n`); process.exit(255); });
socket.on('close', () => { process.stdout.end(() => process.exit(status)); });
