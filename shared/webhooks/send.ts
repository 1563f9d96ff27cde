/**
 * One HTTP/1.1 POST to a checked address (see address.ts): the socket is opened to that address,
 * and TLS verifies the certificate against the URL's host name, so what was checked is what is
 * reached. No redirect is followed (a 3xx is an answer like any other), the whole exchange has
 * one timeout, and at most `maxBodyBytes` of the answer are read.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import tls from 'node:tls';
import type { Target } from './address.ts';

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

export function send(
  target: Target,
  headers: Record<string, string>,
  body: string,
  opts = DEFAULT_SEND,
): Promise<Answer> {
  const payload = new TextEncoder().encode(body);
  const hostHeader = target.url.host;
  const lines = [
    `POST ${target.url.pathname}${target.url.search} HTTP/1.1`,
    `host: ${hostHeader}`,
    'content-type: application/json',
    `content-length: ${payload.length}`,
    'connection: close',
    'user-agent: leads-api-webhooks/1',
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ];
  const head = new TextEncoder().encode(lines.join('\r\n') + '\r\n\r\n');

  return new Promise<Answer>((resolve, reject) => {
    const socket: net.Socket = target.tls
      ? tls.connect({
        host: target.address,
        port: target.port,
        servername: net.isIP(target.host) ? undefined : target.host,
        ALPNProtocols: ['http/1.1'],
      })
      : net.connect({ host: target.address, port: target.port });
    let buffer = Buffer.alloc(0);
    let settled = false;
    let parsed: { status: number; headers: Record<string, string>; start: number } | undefined;
    const finish = (err: Error | null, answer?: Answer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(() => finish(new Error(`no answer within ${opts.timeoutMs / 1000} s`)), opts.timeoutMs);
    const tryFinish = (ended: boolean) => {
      if (!parsed) {
        const end = buffer.indexOf('\r\n\r\n');
        if (end < 0) {
          if (buffer.length > MAX_HEADER_BYTES) finish(new Error('answer headers too large'));
          else if (ended) finish(new Error('connection closed before an answer'));
          return;
        }
        const [statusLine, ...rest] = buffer.subarray(0, end).toString('latin1').split('\r\n');
        const m = statusLine.match(/^HTTP\/1\.[01] (\d{3})/);
        if (!m) return finish(new Error('not an HTTP answer'));
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
      const done = (bytes: Buffer) =>
        finish(null, {
          status: parsed!.status,
          headers: parsed!.headers,
          body: new TextDecoder().decode(bytes.subarray(0, opts.maxBodyBytes)),
        });
      const length = parsed.headers['content-length'];
      if (/chunked/i.test(parsed.headers['transfer-encoding'] ?? '')) {
        const out: Buffer[] = [];
        let size = 0;
        let at = 0;
        for (;;) {
          const eol = raw.indexOf('\r\n', at);
          if (eol < 0) break;
          const n = parseInt(raw.subarray(at, eol).toString('latin1'), 16);
          if (!Number.isFinite(n) || n === 0) return done(Buffer.concat(out));
          const chunk = raw.subarray(eol + 2, eol + 2 + n);
          out.push(chunk);
          size += chunk.length;
          if (size >= opts.maxBodyBytes) return done(Buffer.concat(out));
          if (chunk.length < n) break;
          at = eol + 2 + n + 2;
        }
        if (ended) done(Buffer.concat(out));
      } else if (length !== undefined && /^\d+$/.test(length)) {
        if (raw.length >= Math.min(Number(length), opts.maxBodyBytes) || ended) done(raw.subarray(0, Number(length)));
      } else if (ended || raw.length >= opts.maxBodyBytes || parsed.status === 204 || parsed.status === 304) {
        done(raw);
      }
    };
    socket.once(target.tls ? 'secureConnect' : 'connect', () => {
      socket.write(head);
      socket.write(payload);
    });
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      tryFinish(false);
    });
    socket.on('end', () => tryFinish(true));
    socket.on('close', () => tryFinish(true));
    socket.on(
      'error',
      (err: Error & { code?: string }) => finish(new Error(err.code ? `${err.code}: ${err.message}` : err.message)),
    );
  });
}
