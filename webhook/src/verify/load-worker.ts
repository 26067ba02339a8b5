/**
 * Body of a verification worker thread: runs the client (notary/updater, tuf/) on bytes the
 * main thread fetches for it, and sends back the verified repository as plain data. Runs
 * with a memory budget; if hostile data exceeds it, this thread dies, not the webhook.
 * The main thread decides every fetch (URL, token, limits); the GETs it asks this thread to
 * run are received here, so that a large body costs the admission thread nothing: no TLS,
 * no buffers, no garbage to collect.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
import { GetFailure, httpGet } from '../notary/http-get.js';
import { loadRepository } from '../notary/updater.js';
import type { MetadataRequest, MetadataSource } from '../notary/source.js';
import { repositoryToWire } from '../tuf/index.js';
import { errorFromWire, errorToWire, type FromWorker, type ToWorker } from './load-protocol.js';

const port = parentPort!;

// Verifying large metadata is background work: on a busy node the thread that answers
// admissions must win the CPU. Linux lets a thread have its own nice value (by thread ID);
// elsewhere this thread simply keeps the process's priority.
try {
  const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
  if (Number.isSafeInteger(tid) && tid > 0) setPriority(tid, 19);
} catch {
  // not Linux, or not permitted: same priority as the main thread
}
const pending = new Map<number, { resolve: (b: Uint8Array) => void; reject: (e: unknown) => void }>();
let nextFetch = 0;
/** GETs of the current job: running ones by id, and bodies received until the main thread hands them on. */
const gets = new Map<number, AbortController>();
const held = new Map<number, Uint8Array>();
// One keep-alive pool per scheme for this thread's GETs (http-get keys connections by CA too).
const agents = {
  'https:': new https.Agent({ keepAlive: true, maxSockets: 16, timeout: 30_000 }),
  'http:': new http.Agent({ keepAlive: true, maxSockets: 16, timeout: 30_000 }),
};

function proxySource(job: number, server: string, gun: string): MetadataSource {
  return {
    server,
    gun,
    fetch(req: MetadataRequest): Promise<Uint8Array> {
      const fid = ++nextFetch;
      return new Promise((resolve, reject) => {
        pending.set(fid, { resolve, reject });
        send({ type: 'fetch', job, fid, req });
      });
    },
  };
}

function send(m: FromWorker): void {
  port.postMessage(m);
}

function get(gid: number, req: Extract<ToWorker, { type: 'get' }>['req']): void {
  const ac = new AbortController();
  gets.set(gid, ac);
  const url = new URL(req.url);
  const agent = url.protocol === 'https:' ? agents['https:'] : agents['http:'];
  httpGet({ url, headers: req.headers, agent, ...(req.ca !== undefined ? { ca: req.ca } : {}), signal: ac.signal, maxBytes: req.maxBytes }).then(
    (res) => {
      if (gets.get(gid) !== ac) return;
      gets.delete(gid);
      const ok = res.status === 200;
      if (ok) held.set(gid, res.body);
      const { status, statusMessage, challenges } = res;
      send({ type: 'got', gid, res: { status, statusMessage, headers: { ...res.headers }, challenges, body: ok ? new Uint8Array(0) : res.body, length: res.body.length } });
    },
    (e: unknown) => {
      if (gets.get(gid) !== ac) return;
      gets.delete(gid);
      const f = e instanceof GetFailure ? e : new GetFailure('unreachable', e instanceof Error ? e.message : String(e));
      send({ type: 'get-failed', gid, kind: f.kind, message: f.message });
    },
  );
}

/** A new job: nothing of an earlier one is wanted any more. */
function forgetGets(): void {
  for (const ac of gets.values()) ac.abort();
  gets.clear();
  held.clear();
}

port.on('message', (m: ToWorker) => {
  if (m.type === 'fetched' || m.type === 'fetched-held' || m.type === 'fetch-failed') {
    const p = pending.get(m.fid);
    pending.delete(m.fid);
    if (m.type === 'fetched') p?.resolve(m.bytes);
    else if (m.type === 'fetched-held') {
      const bytes = held.get(m.held);
      held.delete(m.held);
      if (bytes) p?.resolve(bytes);
      else p?.reject(new Error(`the body of GET ${m.held} is not held in this worker`));
    } else p?.reject(errorFromWire(m.error));
    return;
  }
  if (m.type === 'get') {
    get(m.gid, m.req);
    return;
  }
  if (m.type === 'get-abort') {
    gets.get(m.gid)?.abort();
    gets.delete(m.gid);
    held.delete(m.gid);
    return;
  }
  forgetGets();
  const { job } = m;
  const pin = { keys: m.pin.keys.map((k) => Buffer.from(k.buffer, k.byteOffset, k.byteLength)), threshold: m.pin.threshold };
  loadRepository(proxySource(job, m.server, m.gun), { pin, now: m.now, floor: m.floor }).then(
    (repo) => {
      send({ type: 'done', job, wire: repositoryToWire(repo) });
      forgetGets();
    },
    (e: unknown) => {
      send({ type: 'failed', job, error: errorToWire(e) });
      forgetGets();
    },
  );
});
