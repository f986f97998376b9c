// SPDX-License-Identifier: MIT
// The Node peer of bench/ws_bench.sh: a WebSocket echo server on the `ws`
// package (Debian node-ws), GET /echo on 127.0.0.1.
//
//   node bench/ws_echo_node.js PORT
//
// Every message comes back as it came (text as text, binary as binary).
// perMessageDeflate is off (ws's default on the server side too, said here
// so that nobody wonders), as in corio's run: the benchmark's client offers
// no extension.  No keep-alive pings (ws sends none on its own).  Any other
// path, or a plain GET, is answered 404 / 426.
'use strict';

const http = require('http');
let WebSocket;
try {
  WebSocket = require('ws');
} catch (e) {
  WebSocket = require('/usr/share/nodejs/ws'); // Debian's node-ws, outside NODE_PATH
}

const port = Number(process.argv[2]);
if (!(port > 0 && port < 65536)) {
  console.error('usage: node ws_echo_node.js PORT');
  process.exit(2);
}

const server = http.createServer((req, res) => {
  res.writeHead(req.url === '/echo' ? 426 : 404, {'Content-Type': 'text/plain'});
  res.end(req.url === '/echo' ? 'WebSocket only\n' : 'not found\n');
});
const wss = new WebSocket.Server({noServer: true, perMessageDeflate: false,
                                  maxPayload: 64 * 1024 * 1024});

server.on('upgrade', (req, socket, head) => {
  if (req.url !== '/echo') {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, {binary: isBinary}));
    ws.on('error', () => {});
  });
});

server.listen(port, '127.0.0.1');
const stop = () => {
  for (const ws of wss.clients) ws.terminate();
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 1000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
