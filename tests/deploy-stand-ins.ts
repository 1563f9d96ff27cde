/**
 * Local stand-ins for the three services a deploy talks to, all on 127.0.0.1: the Supabase
 * Management API (records what `supabase functions deploy` uploads), an npm registry (serves the
 * installed packages, so Deno can fetch them into an empty DENO_DIR), and an outbound trap (the
 * HTTP(S)_PROXY of every child process: whatever would have left the machine lands here, is
 * refused and recorded, so a test can assert that nothing tried).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('no port');
  return `http://127.0.0.1:${address.port}`;
}

const close = (server: Server) =>
  new Promise<void>((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export interface Upload {
  slug: string | null;
  authorization: string | undefined;
  metadata: Record<string, unknown>;
  /** Path as sent (the multipart filename) -> content, in upload order. */
  files: Map<string, Buffer>;
}

/**
 * The Management API as far as `functions deploy --use-api` uses it (supabase/cli v2.117.0,
 * pkg/function/deploy.go): one multipart `POST /v1/projects/{ref}/functions/deploy?slug=`, with a
 * `metadata` JSON field and one `file` field per source file, answered 201 with the function.
 * Anything else (the CLI's telemetry asks for `GET /v1/projects/{ref}` afterwards) is recorded
 * and answered 404.
 */
export async function startManagementApi() {
  const uploads: Upload[] = [];
  const requests: string[] = [];
  const server = createServer(async (req, res) => {
    const body = await bodyOf(req);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    requests.push(`${req.method} ${url.pathname}`);
    const deploy = /^\/v1\/projects\/([a-z]{20})\/functions\/deploy$/.exec(url.pathname);
    if (req.method !== 'POST' || !deploy) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"message":"Not found"}');
      return;
    }
    // undici's multipart parser (Node's own fetch), not a hand-written one.
    const form = await new Request('http://127.0.0.1/', {
      method: 'POST',
      body: new Uint8Array(body),
      headers: { 'content-type': req.headers['content-type'] ?? '' },
    }).formData();
    const files = new Map<string, Buffer>();
    let metadata: Record<string, unknown> = {};
    for (const [name, value] of form) {
      if (name === 'metadata' && typeof value === 'string') metadata = JSON.parse(value);
      else if (name === 'file' && typeof value !== 'string') {
        files.set(value.name, Buffer.from(await value.arrayBuffer()));
      }
    }
    uploads.push({ slug: url.searchParams.get('slug'), authorization: req.headers.authorization, metadata, files });
    res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({
      id: '00000000-0000-4000-8000-000000000017',
      slug: url.searchParams.get('slug'),
      name: metadata.name,
      status: 'ACTIVE',
      version: uploads.length,
      entrypoint_path: metadata.entrypoint_path,
      import_map_path: metadata.import_map_path,
      verify_jwt: metadata.verify_jwt,
    }));
  });
  const url = await listen(server);
  return { url, uploads, requests, close: () => close(server) };
}

/**
 * A forward proxy that refuses everything: `CONNECT host:443` (HTTPS) and absolute-URL requests
 * (plain HTTP) are recorded and answered 403. Set as HTTPS_PROXY/HTTP_PROXY (with NO_PROXY for
 * 127.0.0.1) it turns any attempt of a client that honours those variables (the CLI's Go HTTP
 * client, Deno, npm) to reach the internet into an entry in `attempts`, with no DNS lookup and no
 * packet leaving the machine. (Without a fresh supabase/.temp/cli-latest the CLI's release check
 * lands here as `CONNECT api.github.com:443`.)
 */
export async function startOutboundTrap() {
  const attempts: string[] = [];
  const server = createServer((req, res) => {
    attempts.push(`${req.method} ${req.url}`);
    res.writeHead(403).end();
  });
  server.on('connect', (req, socket) => {
    attempts.push(`CONNECT ${req.url}`);
    socket.end('HTTP/1.1 403 Forbidden\r\n\r\n');
  });
  const url = await listen(server);
  return {
    url,
    attempts,
    /** Env for a child process: proxies pointing here, loopback exempt. */
    env: {
      HTTPS_PROXY: url,
      HTTP_PROXY: url,
      https_proxy: url,
      http_proxy: url,
      NO_PROXY: '127.0.0.1,localhost',
      no_proxy: '127.0.0.1,localhost',
    },
    close: () => close(server),
  };
}

/** Node's lookup of an installed package's directory (not its entry: `exports` may hide package.json). */
function packageDir(name: string, from: string): string {
  for (let dir = from;; dir = dirname(dir)) {
    if (existsSync(join(dir, 'node_modules', name, 'package.json'))) return join(dir, 'node_modules', name);
    if (dirname(dir) === dir) throw new Error(`${name} is not installed (from ${from})`);
  }
}

interface Packed {
  name: string;
  version: string;
  manifest: Record<string, unknown>;
  tarball: Buffer;
  integrity: string;
  shasum: string;
}

/**
 * An npm registry serving exactly the given packages (and their dependencies, recursively) as
 * installed in node_modules: each is packed with `npm pack` and served with its packument, the
 * tarball's `dist.integrity` (sha512) and `dist.shasum` (sha1) computed from the bytes served.
 * Any other name is recorded and answered 404, so a test sees what the client asked for.
 */
export async function startNpmRegistry(names: string[], opts: { from: string; env: Record<string, string> }) {
  const dirs = new Map<string, string>();
  const visit = (name: string, from: string) => {
    if (dirs.has(name)) return;
    const dir = packageDir(name, from);
    dirs.set(name, dir);
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies })) visit(dep, dir);
  };
  for (const name of names) visit(name, opts.from);

  const out = mkdtempSync(join(tmpdir(), 'npm-stand-in-'));
  const packed = new Map<string, Packed>();
  try {
    const { stdout } = await run(
      'npm',
      ['pack', '--ignore-scripts', '--json', '--pack-destination', out, ...dirs.values()],
      {
        env: { ...opts.env, npm_config_update_notifier: 'false', npm_config_audit: 'false', npm_config_fund: 'false' },
      },
    );
    for (
      const { name, version, filename } of JSON.parse(stdout) as { name: string; version: string; filename: string }[]
    ) {
      const tarball = readFileSync(join(out, filename));
      packed.set(name, {
        name,
        version,
        manifest: JSON.parse(readFileSync(join(dirs.get(name)!, 'package.json'), 'utf8')),
        tarball,
        integrity: `sha512-${createHash('sha512').update(tarball).digest('base64')}`,
        shasum: createHash('sha1').update(tarball).digest('hex'),
      });
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }

  const requests: string[] = [];
  let url = '';
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://127.0.0.1').pathname);
    requests.push(path);
    const tarball = /^\/(.+)\/-\/[^/]+-(\d[^/]*)\.tgz$/.exec(path);
    const pkg = packed.get(tarball ? tarball[1] : path.slice(1));
    if (!pkg || (tarball && tarball[2] !== pkg.version)) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"Not found"}');
    } else if (tarball) {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(pkg.tarball);
    } else {
      const file = `${pkg.name.replace(/^@[^/]+\//, '')}-${pkg.version}.tgz`;
      const dist = { tarball: `${url}/${pkg.name}/-/${file}`, integrity: pkg.integrity, shasum: pkg.shasum };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        name: pkg.name,
        'dist-tags': { latest: pkg.version },
        versions: { [pkg.version]: { ...pkg.manifest, dist } },
      }));
    }
  });
  url = await listen(server);
  return {
    url,
    requests,
    /** name -> version of every package served. */
    packages: Object.fromEntries([...packed.values()].map((p) => [p.name, p.version])),
    close: () => close(server),
  };
}
