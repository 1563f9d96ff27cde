/**
 * One HTTP/1.1 POST to a checked address (see address.ts): the socket is opened to that address,
 * and TLS verifies the certificate against the URL's host name, so what was checked is what is
 * reached. No redirect is followed (a 3xx is an answer like any other), the whole exchange has
 * one timeout, and at most `maxBodyBytes` of the answer are read. A connection whose answer was
 * read to its end is kept for the next delivery to the same checked address (keep-alive), which
 * spares both sides a handshake per event.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import tls from 'node:tls';
import type { Target } from './webhook-address.ts';

export interface SendOptions {
  timeoutMs: number;
  maxBodyBytes: number;
}

export interface Answer {
  status: number;
  headers: Record<string, string>;
  /** The first `maxBodyBytes` of the body (chunked encoding undone). */
  body: string;
}

export const DEFAULT_SEND: SendOptions = { timeoutMs: 15_000, maxBodyBytes: 64 * 1024 };
const MAX_HEADER_BYTES = 16 * 1024;
/** Idle connections kept per address, and for how long. */
const MAX_IDLE = 32;
const IDLE_MS = 4000;

/** Idle connections by checked address, port, TLS and host name: never shared across addresses. */
const idle = new Map<string, { socket: net.Socket; forget: () => void }[]>();

const keyOf = (t: Target) => `${t.tls ? 's' : 'p'}|${t.address}|${t.port}|${t.host}`;

function takeIdle(key: string): net.Socket | undefined {
  const list = idle.get(key);
  while (list?.length) {
    const { socket, forget } = list.pop()!;
    forget();
    if (!socket.destroyed && socket.writable) return socket;
  }
  return undefined;
}

function keep(key: string, socket: net.Socket) {
  const list = idle.get(key) ?? [];
  idle.set(key, list);
  if (list.length >= MAX_IDLE) return socket.destroy();
  const drop = () => {
    const i = list.findIndex((e) => e.socket === socket);
    if (i >= 0) list.splice(i, 1);
    socket.destroy();
  };
  const timer = setTimeout(drop, IDLE_MS);
  // An idle connection the receiver closes, or that errs, leaves the pool quietly.
  socket.on('close', drop);
  socket.on('error', drop);
  socket.on('data', drop); // nothing may arrive between exchanges
  const forget = () => {
    clearTimeout(timer);
    socket.off('close', drop);
    socket.off('error', drop);
    socket.off('data', drop);
  };
  list.push({ socket, forget });
}

class Unanswered extends Error {}

function connect(target: Target): net.Socket {
  return target.tls
    ? tls.connect({
      host: target.address,
      port: target.port,
      servername: net.isIP(target.host) ? undefined : target.host,
      ALPNProtocols: ['http/1.1'],
    })
    : net.connect({ host: target.address, port: target.port });
}

export async function send(
  target: Target,
  headers: Record<string, string>,
  body: string,
  opts = DEFAULT_SEND,
): Promise<Answer> {
  const payload = new TextEncoder().encode(body);
  const lines = [
    `POST ${target.url.pathname}${target.url.search} HTTP/1.1`,
    `host: ${target.url.host}`,
    'content-type: application/json',
    `content-length: ${payload.length}`,
    'user-agent: leads-api-webhooks/1',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  const request = Buffer.concat([new TextEncoder().encode(lines.join('\r\n') + '\r\n\r\n'), payload]);
  const key = keyOf(target);
  const deadline = Date.now() + opts.timeoutMs;
  const reused = takeIdle(key);
  if (reused) {
    try {
      return await exchange(reused, false, request, key, deadline, opts);
    } catch (err) {
      // The receiver closed the kept connection before answering: send again on a new one.
      if (!(err instanceof Unanswered)) throw err;
    }
  }
  return await exchange(connect(target), target.tls, request, key, deadline, opts);
}

function exchange(
  socket: net.Socket,
  handshake: boolean,
  request: Buffer,
  key: string,
  deadline: number,
  opts: SendOptions,
): Promise<Answer> {
  return new Promise<Answer>((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    let settled = false;
    let parsed: { status: number; headers: Record<string, string>; start: number } | undefined;
    const cleanup = () => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.off('error', onError);
    };
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      cleanup();
      socket.destroy();
      reject(err);
    };
    const done = (bytes: Buffer, reusable: boolean) => {
      if (settled) return;
      settled = true;
      cleanup();
      const answer = {
        status: parsed!.status,
        headers: parsed!.headers,
        body: new TextDecoder().decode(bytes.subarray(0, opts.maxBodyBytes)),
      };
      if (reusable && !/close/i.test(parsed!.headers.connection ?? '')) keep(key, socket);
      else socket.destroy();
      resolve(answer);
    };
    const timer = setTimeout(
      () => fail(new Error(`no answer within ${opts.timeoutMs / 1000} s`)),
      Math.max(0, deadline - Date.now()),
    );
    const tryFinish = (ended: boolean) => {
      if (!parsed) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) {
          if (buffer.length > MAX_HEADER_BYTES) fail(new Error('answer headers too large'));
          else if (ended) {
            fail(buffer.length === 0 ? new Unanswered('connection closed before an answer') : new Error('cut off'));
          }
          return;
        }
        const [statusLine, ...rest] = buffer.subarray(0, end).toString('latin1').split('\r\n');
        const m = statusLine.match(/^HTTP\/1\.[01] (\d{3})/);
        if (!m) return fail(new Error('not an HTTP answer'));
        const h: Record<string, string> = {};
        for (const line of rest) {
          const i = line.indexOf(':');
          if (i > 0) h[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
        }
        parsed = { status: Number(m[1]), headers: h, start: end + 4 };
        if (parsed.status >= 100 && parsed.status < 200) { // an interim answer: the real one follows
          buffer = buffer.subarray(parsed.start);
          parsed = undefined;
          return tryFinish(ended);
        }
      }
      const raw = buffer.subarray(parsed.start);
      const length = parsed.headers['content-length'];
      if (/chunked/i.test(parsed.headers['transfer-encoding'] ?? '')) {
        const out: Buffer[] = [];
        let size = 0;
        let at = 0;
        for (;;) {
          const eol = raw.indexOf('\r\n', at);
          if (eol < 0) break;
          const n = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
          if (!Number.isFinite(n)) return done(Buffer.concat(out), false);
          if (n === 0) {
            // The last chunk; reusable only when the (empty) trailer has arrived too.
            return done(Buffer.concat(out), raw.subarray(eol + 2).toString('latin1') === '\r\n');
          }
          const chunk = raw.subarray(eol + 2, eol + 2 + n);
          out.push(chunk);
          size += chunk.length;
          if (size >= opts.maxBodyBytes) return done(Buffer.concat(out), false);
          if (chunk.length < n) break;
          at = eol + 2 + n + 2;
        }
        if (ended) done(Buffer.concat(out), false);
      } else if (length !== undefined && /^\d+$/.test(length)) {
        const n = Number(length);
        if (raw.length >= n) done(raw.subarray(0, n), raw.length === n);
        else if (raw.length >= opts.maxBodyBytes || ended) done(raw, false);
      } else if (parsed.status === 204 || parsed.status === 304) {
        done(raw, raw.length === 0);
      } else if (ended || raw.length >= opts.maxBodyBytes) {
        done(raw, false); // delimited by the end of the connection
      }
    };
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      tryFinish(false);
    };
    const onEnd = () => tryFinish(true);
    const onError = (err: Error & { code?: string }) =>
      fail(
        buffer.length === 0 && !handshake && err.code === 'ECONNRESET'
          ? new Unanswered(err.message)
          : new Error(err.code ? `${err.code}: ${err.message}` : err.message),
      );
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('close', onEnd);
    socket.on('error', onError);
    if (handshake) socket.once('secureConnect', () => socket.write(request));
    else if (socket.connecting) socket.once('connect', () => socket.write(request));
    else socket.write(request);
  });
}
