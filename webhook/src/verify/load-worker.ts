/**
 * Body of a verification worker thread: runs the client (notary/updater, tuf/) on bytes the
 * main thread fetches for it, and sends back the verified repository as plain data. Runs
 * with a memory budget; if hostile data exceeds it, this thread dies, not the webhook.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { parentPort } from 'node:worker_threads';
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

port.on('message', (m: ToWorker) => {
  if (m.type === 'fetched' || m.type === 'fetch-failed') {
    const p = pending.get(m.fid);
    pending.delete(m.fid);
    if (m.type === 'fetched') p?.resolve(m.bytes);
    else p?.reject(errorFromWire(m.error));
    return;
  }
  const { job } = m;
  const pin = { keys: m.pin.keys.map((k) => Buffer.from(k.buffer, k.byteOffset, k.byteLength)), threshold: m.pin.threshold };
  loadRepository(proxySource(job, m.server, m.gun), { pin, now: m.now, floor: m.floor }).then(
    (repo) => send({ type: 'done', job, wire: repositoryToWire(repo) }),
    (e: unknown) => send({ type: 'failed', job, error: errorToWire(e) }),
  );
});
