// Drives the function with wrk: one wrk process per instance URL, all at once, each thread one
// stream of the workload (request bodies pre-written to a file). Each process reports its latency
// at every 0.1th percentile; merged with each process's request count as weight, they give the
// percentiles of all requests together (to within 0.1 percentile), not an average of percentiles.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * @param {{ urls: string[], token: string, workload: import('./workloads.mjs').Workload,
 *           context: import('./workloads.mjs').BenchContext, connections: number, seconds: number,
 *           threads?: number, timeout?: string, log?: (...a: unknown[]) => void }} opts
 *   connections and threads (default min(connections, 2)) are totals, split evenly over the urls.
 * @returns {Promise<{ rps: number, p50: number, p99: number, errors: number }>} latencies in ms
 */
export async function driveWrk({ urls, token, workload, context, connections, seconds, threads, timeout, log }) {
  const perUrl = Math.max(1, Math.floor((threads ?? Math.min(connections, 2)) / urls.length));
  const dir = mkdtempSync(join(tmpdir(), 'wrk-'));
  try {
    const runs = urls.map((url, u) => {
      for (let t = 0; t < perUrl; t++) {
        const stream = u * perUrl + t;
        const lines = [];
        for (let n = 1; n <= 20_000; n++) lines.push(JSON.stringify(workload.body(context, stream, n)));
        writeFileSync(join(dir, `bodies-${stream}.txt`), lines.join('\n') + '\n');
      }
      const script = join(dir, `script-${u}.lua`);
      writeFileSync(script, luaScript(dir, token, u * perUrl, Boolean(workload.key)));
      const conns = Math.max(perUrl, Math.round(connections / urls.length));
      const args = [
        '-t',
        String(perUrl),
        '-c',
        String(conns),
        '-d',
        `${seconds}s`,
        '-s',
        script,
        ...(timeout ? ['--timeout', timeout] : []),
        `${url}/functions/v1/api`,
      ];
      return new Promise((resolve, reject) =>
        execFile('wrk', args, { maxBuffer: 256 * 1024 * 1024 }, (err, out) => (err ? reject(err) : resolve(out)))
      );
    });
    const outs = await Promise.all(runs);
    let requests = 0, errors = 0, rps = 0;
    const samples = []; // [latency ms, weight]
    for (const out of outs) {
      const r = JSON.parse(/RESULT (.*)/.exec(out)[1]);
      requests += r.requests;
      rps += r.rps;
      errors += r.non2xx + r.errors;
      const quantiles = /QUANTILES (.*)/.exec(out)[1].trim().split(' ').map(Number);
      for (const q of quantiles) samples.push([q / 1000, r.requests / quantiles.length]);
      const firstFailure = /NON2XX (.*)/.exec(out)?.[1];
      if (firstFailure) log?.(`  first non-2xx answer: ${firstFailure.slice(0, 200)}`);
    }
    if (!requests) throw new Error(`wrk completed no request against ${urls.join(', ')}`);
    samples.sort((a, b) => a[0] - b[0]);
    const percentile = (p) => {
      let seen = 0;
      for (const [v, w] of samples) if ((seen += w) >= requests * p - 1e-9) return v;
      return samples[samples.length - 1][0];
    };
    return { rps, p50: percentile(0.5), p99: percentile(0.99), errors };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function luaScript(dir, token, firstStream, keyed) {
  return `
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Authorization"] = "Bearer ${token}"
    local next_id = ${firstStream}
    function setup(thread) thread:set("id", next_id); next_id = next_id + 1 end
    local bodies, i = {}, 0
    function init(args)
      for line in io.lines("${dir}/bodies-" .. id .. ".txt") do bodies[#bodies + 1] = line end
    end
    -- A keyed workload sends an Idempotency-Key no earlier call of any run has used (bodies cycle).
    local keyed, run = ${keyed ? 'true' : 'false'}, "${Date.now()}-${Math.random().toString(36).slice(2)}"
    function request()
      i = i + 1
      local headers = nil
      if keyed then
        headers = {}
        for k, v in pairs(wrk.headers) do headers[k] = v end
        headers["Idempotency-Key"] = "bench-" .. run .. "-" .. id .. "-" .. i
      end
      return wrk.format(nil, nil, headers, bodies[(i - 1) % #bodies + 1])
    end
    function response(status, headers, body)
      if status >= 300 and not shown then shown = true; io.write("NON2XX " .. status .. " " .. body .. "\\n") end
    end
    function done(summary, latency, requests)
      local e = summary.errors
      io.write(string.format('RESULT {"requests":%d,"rps":%f,"p50":%f,"p99":%f,"non2xx":%d,"errors":%d}\\n',
        summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000, e.status, e.connect + e.read + e.write + e.timeout))
      local parts = {}
      for k = 1, 1000 do parts[k] = string.format("%d", latency:percentile(k / 10)) end
      io.write("QUANTILES " .. table.concat(parts, " ") .. "\\n")
    end`;
}
