/** A webhook receiver on 127.0.0.1 for the tests: records every request, answers as told. */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

export interface Receiver {
  url: string;
  port: number;
  received: Received[];
  /** TCP connections accepted so far (keep-alive reuses them). */
  connections: number;
  /** Decides each answer; default 204. */
  respond: (
    req: Received,
    n: number,
  ) => { status: number; headers?: Record<string, string>; body?: string; delayMs?: number };
  /** Closes the connections that wait for a next request, as a receiver's keep-alive timeout does. */
  closeIdle(): void;
  close(): Promise<void>;
}

export async function startReceiver(port = 0): Promise<Receiver> {
  const r: Receiver = {
    url: '',
    port: 0,
    received: [],
    connections: 0,
    respond: () => ({ status: 204 }),
    closeIdle: () => server.closeIdleConnections(),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
  const read = (req: IncomingMessage) =>
    new Promise<string>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    });
  const server = createServer(async (req, res) => {
    const body = await read(req);
    const h = req.headers as Record<string, string>;
    const got: Received = {
      id: h['webhook-id'],
      timestamp: h['webhook-timestamp'],
      signature: h['webhook-signature'],
      headers: h,
      body,
      at: Date.now(),
    };
    r.received.push(got);
    const answer = r.respond(got, r.received.length);
    if (answer.delayMs) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
    if (res.destroyed) return;
    res.writeHead(answer.status, answer.headers);
    res.end(answer.body ?? '');
  });
  server.keepAliveTimeout = 1000;
  server.on('connection', () => r.connections++);
  // A request whose sender died is not an error of the receiver.
  server.on('clientError', (_err, socket) => socket.destroy());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  r.port = (server.address() as AddressInfo).port;
  r.url = `http://127.0.0.1:${r.port}/hooks`;
  return r;
}

/** A resolver for tests: names map to given addresses; any other name fails. Never real DNS. */
export const stubResolver = (names: Record<string, string[]> = {}) => async (host: string) => {
  if (Object.hasOwn(names, host)) return names[host];
  throw new Error(`stub resolver: no ${host}`);
};
