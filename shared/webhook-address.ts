/**
 * Where a webhook may be sent (SSRF safety): `https` only, to a host whose every address is
 * public. Loopback, private, carrier-grade NAT, link-local (cloud metadata at 169.254.169.254),
 * unique-local, multicast, reserved and documentation ranges are refused, and so is any IPv6 form
 * that embeds an IPv4 address (mapped, NAT64, 6to4). The check runs on the addresses the name
 * resolves to, and the sender connects to the checked address, so a name that resolves elsewhere a
 * moment later (DNS rebinding) is never reached. `allowPrivate` (WEBHOOKS_ALLOW_PRIVATE=true, for
 * local development and tests) lifts the address rule and, only with it, allows plain `http`.
 */
import { isIP } from 'node:net';

/** Resolves a host name to its IP addresses (A and AAAA). Injected: tests stub it. */
export type Resolve = (host: string) => Promise<string[]>;

export interface Target {
  url: URL;
  /** The checked address the sender connects to. */
  address: string;
  port: number;
  tls: boolean;
  /** The name TLS verifies and the Host header carries. */
  host: string;
}

export class RefusedUrl extends Error {
  override name = 'RefusedUrl';
}

const v4 = (text: string): number[] | null => {
  const parts = text.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255)) return null;
  return parts.map(Number);
};

/** IPv4 ranges refused: [first octets, prefix length]. */
const V4_BLOCKED: [number[], number][] = [
  [[0], 8], // "this" network
  [[10], 8], // private
  [[100, 64], 10], // carrier-grade NAT (also Alibaba's metadata address)
  [[127], 8], // loopback
  [[169, 254], 16], // link-local: cloud metadata
  [[172, 16], 12], // private
  [[192, 0, 0], 24], // IETF protocol assignments
  [[192, 0, 2], 24], // documentation
  [[192, 88, 99], 24], // 6to4 relay
  [[192, 168], 16], // private
  [[198, 18], 15], // benchmarking
  [[198, 51, 100], 24], // documentation
  [[203, 0, 113], 24], // documentation
  [[224], 4], // multicast
  [[240], 4], // reserved, broadcast
];

function inV4(bytes: number[], [prefix, bits]: [number[], number]): boolean {
  const ip = ((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0;
  const base = [0, 1, 2, 3].reduce((n, i) => ((n << 8) | (prefix[i] ?? 0)) >>> 0, 0);
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  return ((ip & mask) >>> 0) === ((base & mask) >>> 0);
}

/** The eight 16-bit groups of an IPv6 address, or null. */
function v6(text: string): number[] | null {
  if (text.includes('%')) return null; // a zone id: link-local by definition
  let head = text;
  const tail: number[] = [];
  const dotted = text.match(/^(.*:)(\d+\.\d+\.\d+\.\d+)$/);
  if (dotted) {
    const b = v4(dotted[2]);
    if (!b) return null;
    head = dotted[1].endsWith('::') ? dotted[1] : dotted[1].slice(0, -1);
    tail.push((b[0] << 8) | b[1], (b[2] << 8) | b[3]);
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const parse = (
    s: string,
  ) => (s === '' ? [] : s.split(':').map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN)));
  const left = parse(halves[0]);
  const right = halves.length === 2 ? parse(halves[1]) : [];
  const fill = 8 - left.length - right.length - tail.length;
  if (halves.length === 1 ? fill !== 0 : fill < 1) return null;
  const groups = [...left, ...Array(halves.length === 2 ? fill : 0).fill(0), ...right, ...tail];
  return groups.length === 8 && groups.every((g) => Number.isInteger(g)) ? groups : null;
}

/** Why an address may not receive webhooks, or null when it is public. */
export function forbiddenReason(address: string): string | null {
  const a = address.replace(/^\[|\]$/g, '');
  const b4 = v4(a);
  if (b4) return V4_BLOCKED.some((r) => inV4(b4, r)) ? `${a} is not a public address` : null;
  const g = v6(a);
  if (!g) return `${a} is not an IP address`;
  const reason = `${a} is not a public address`;
  if (g.every((x) => x === 0)) return reason; // ::
  if (g.slice(0, 7).every((x) => x === 0) && g[7] === 1) return reason; // ::1
  if (g.slice(0, 5).every((x) => x === 0) && (g[5] === 0xffff || g[5] === 0)) return reason; // IPv4-mapped, -compatible
  if (g[0] === 0x64 && g[1] === 0xff9b) return reason; // NAT64
  if (g[0] === 0x2002) return reason; // 6to4: an IPv4 address inside
  if (g[0] === 0x2001 && g[1] === 0) return reason; // Teredo
  if (g[0] === 0x2001 && g[1] === 0xdb8) return reason; // documentation
  if (g[0] === 0x100 && g[1] === 0 && g[2] === 0 && g[3] === 0) return reason; // discard
  if ((g[0] & 0xfe00) === 0xfc00) return reason; // unique-local (AWS metadata fd00:ec2::254)
  if ((g[0] & 0xffc0) === 0xfe80 || (g[0] & 0xffc0) === 0xfec0) return reason; // link-local, site-local
  if ((g[0] & 0xff00) === 0xff00) return reason; // multicast
  return null;
}

/**
 * Checks a webhook URL and resolves it to the address to connect to. Throws RefusedUrl, before
 * any connection is made, when the URL or any address of its host is not allowed.
 */
export async function checkUrl(raw: string, opts: { resolve: Resolve; allowPrivate: boolean }): Promise<Target> {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new RefusedUrl('not a valid URL');
  }
  const tls = url.protocol === 'https:';
  if (!tls && !(url.protocol === 'http:' && opts.allowPrivate)) {
    throw new RefusedUrl('the URL must use https');
  }
  if (url.username || url.password) throw new RefusedUrl('the URL must not carry a user name or password');
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  if (isIP(host)) addresses = [host];
  else {
    try {
      addresses = await opts.resolve(host);
    } catch {
      throw new RefusedUrl(`${host} does not resolve`);
    }
    if (addresses.length === 0) throw new RefusedUrl(`${host} does not resolve`);
  }
  if (!opts.allowPrivate) {
    for (const address of addresses) {
      const reason = forbiddenReason(address);
      if (reason) {
        throw new RefusedUrl(
          host === address ? reason : `${host} resolves to ${reason.replace(/^\S+ is/, address + ' which is')}`,
        );
      }
    }
  }
  return { url, address: addresses[0], port: Number(url.port || (tls ? 443 : 80)), tls, host };
}

/** Deno's resolver, for the function and the dispatcher script (never used by the tests). */
export const denoResolve: Resolve = async (host) => {
  // deno-lint-ignore no-explicit-any
  const D = (globalThis as any).Deno;
  const found = await Promise.allSettled([D.resolveDns(host, 'A'), D.resolveDns(host, 'AAAA')]);
  return found.flatMap((r) => (r.status === 'fulfilled' ? (r.value as string[]) : []));
};
