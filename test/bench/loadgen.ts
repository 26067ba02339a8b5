// Load generator, run as its own process so it never shares an event loop with the server
// it measures: N keep-alive HTTPS connections, each sending the next request as soon as the
// previous answer is read (closed loop), or at a fixed total rate (paced). Prints one JSON
// line with counts and latencies.
//
//   node loadgen.js '{"port":8443,"path":"/mutate","bodyFile":"...","caFile":"...",
//                     "connections":20,"durationMs":5000,"warmupMs":500,"expect":"\"allowed\":true"}'
import { Agent, request } from 'node:https';
import { readFileSync } from 'node:fs';
import { percentile } from './common.js';

interface Config {
  port: number;
  path: string;
  bodyFile: string;
  caFile: string;
  connections: number;
  durationMs: number;
  warmupMs: number;
  /** Every answer must be HTTP 200 and contain this text. */
  expect: string;
  /** Also print every latency (ms), so rounds can be merged into one distribution. */
  latencies?: boolean;
  /**
   * Paced instead of closed-loop: this many requests per second in total, spread evenly over
   * the connections. Latency then counts from when a request was due, not when it was sent,
   * so a server that falls behind is not flattered (no coordinated omission).
   */
  rate?: number;
}

export interface LoadResult {
  requests: number;
  errors: number;
  firstError?: string;
  seconds: number;
  rps: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Share of one core the generator itself used: near 1 means it may be the bottleneck. */
  clientCpu: number;
  /** Answers including the warm-up, to divide the server's CPU time by. */
  allRequests: number;
}

const cfg = JSON.parse(process.argv[2] ?? '{}') as Config;
const body = readFileSync(cfg.bodyFile);
const ca = readFileSync(cfg.caFile);
const agent = new Agent({ keepAlive: true, maxSockets: cfg.connections, maxFreeSockets: cfg.connections });
const headers = { 'content-type': 'application/json', 'content-length': String(body.length) };

function once(): Promise<{ ok: boolean; error?: string }> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port: cfg.port, path: cfg.path, method: 'POST', headers, agent, ca, servername: 'localhost' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if (res.statusCode === 200 && text.includes(cfg.expect)) resolve({ ok: true });
          else resolve({ ok: false, error: `HTTP ${res.statusCode}: ${text.slice(0, 300)}` });
        });
        res.on('error', (e) => resolve({ ok: false, error: e.message }));
      },
    );
    req.on('error', (e) => resolve({ ok: false, error: e.message }));
    req.end(body);
  });
}

async function main(): Promise<void> {
  const latencies: number[] = [];
  let errors = 0;
  let all = 0;
  let firstError: string | undefined;
  let measuring = false;
  const start = performance.now();
  const warmEnd = start + cfg.warmupMs;
  const end = warmEnd + cfg.durationMs;
  let cpuAtStart = process.cpuUsage();
  setTimeout(() => {
    measuring = true;
    cpuAtStart = process.cpuUsage();
  }, cfg.warmupMs);
  const interval = cfg.rate ? (1000 * cfg.connections) / cfg.rate : 0;
  const loop = async (conn: number) => {
    let due = start + (interval * conn) / cfg.connections;
    for (;;) {
      let t0 = performance.now();
      if (interval > 0) {
        // Timers may fire up to a millisecond early; never send before the request is due.
        while (t0 < due) {
          const wait = due - t0;
          await new Promise((r) => (wait >= 1 ? setTimeout(r, wait) : setImmediate(r)));
          t0 = performance.now();
        }
        t0 = due;
        due += interval;
      }
      if (t0 >= end) return;
      const r = await once();
      const t1 = performance.now();
      all++;
      if (!measuring || t0 < warmEnd) continue;
      if (r.ok) latencies.push(t1 - t0);
      else {
        errors++;
        firstError ??= r.error;
      }
    }
  };
  await Promise.all(Array.from({ length: cfg.connections }, (_, i) => loop(i)));
  const cpu = process.cpuUsage(cpuAtStart);
  const seconds = (performance.now() - warmEnd) / 1000;
  const sorted = Float64Array.from(latencies).sort();
  const result: LoadResult = {
    requests: latencies.length,
    errors,
    ...(firstError ? { firstError } : {}),
    seconds,
    rps: latencies.length / seconds,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
    clientCpu: (cpu.user + cpu.system) / 1e6 / seconds,
    allRequests: all,
  };
  const out = cfg.latencies ? { ...result, latencies: latencies.map((l) => Math.round(l * 1000) / 1000) } : result;
  agent.destroy();
  process.stdout.write(JSON.stringify(out) + '\n');
}

void main();
