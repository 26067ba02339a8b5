// An HTTPS reverse proxy in front of notary-server that counts every metadata GET per
// repository and file, so the burst figure is counted where it matters: at the server.
import { readFileSync } from 'node:fs';
import { Agent, createServer, request, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';

export interface CountingProxy {
  url: string;
  /** "<gun> <file>" -> GETs, with the hash of hash-addressed files taken out of the name. */
  counts: Map<string, number>;
  close(): Promise<void>;
}

const TUF_PATH = /^\/v2\/(.+)\/_trust\/tuf\/(.+)$/;

export async function startCountingProxy(opts: { upstream: string; caPem: string; certFile: string; keyFile: string }): Promise<CountingProxy> {
  const upstream = new URL(opts.upstream);
  const agent = new Agent({ keepAlive: true, maxSockets: 64, ca: opts.caPem });
  const counts = new Map<string, number>();
  const server: Server = createServer({ cert: readFileSync(opts.certFile), key: readFileSync(opts.keyFile) }, (req, res) => {
    const m = TUF_PATH.exec(req.url ?? '');
    if (m) {
      const file = m[2]!.replace(/\.[0-9a-f]{64}\.json$/, '.json');
      const key = `${m[1]} ${file}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const out = request(
      { host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: { ...req.headers, host: upstream.host }, agent },
      (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      },
    );
    out.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(e.message);
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        agent.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
