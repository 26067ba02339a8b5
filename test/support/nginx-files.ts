// A TUF 1.0 repository is static files: this serves a directory with Debian's nginx on
// 127.0.0.1 over plain HTTP (what the TUF conformance suite gives its clients) or HTTPS,
// started in the foreground with its own prefix and stopped by PID. Every request is logged,
// so tests can check which files a client fetched, as the suite does.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeCa, issueServerCert, type CertAuthority } from '../fault/certs.js';
import { freePorts, pidAlive } from './stack.js';

const NGINX = '/usr/sbin/nginx';

export interface NginxFiles {
  /** http(s)://127.0.0.1:PORT/ */
  url: string;
  /** Present when serving HTTPS: the CA that issued the server's certificate. */
  ca?: CertAuthority;
  pid: number;
  /** Request paths (as sent, still percent-encoded) since the last call, in order. */
  takeRequests(): Promise<string[]>;
  stop(): Promise<void>;
}

function waitForPort(port: number, child: ChildProcess, log: () => string): Promise<void> {
  const until = Date.now() + 15_000;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      if (child.exitCode !== null) return reject(new Error(`nginx exited with ${child.exitCode}: ${log()}`));
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > until) reject(new Error(`nginx did not listen on 127.0.0.1:${port}: ${log()}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** Serves `root` read-only; `tls` adds a certificate of a fresh CA. */
export async function serveFiles(root: string, opts: { tls?: boolean } = {}): Promise<NginxFiles> {
  if (!existsSync(NGINX)) throw new Error(`${NGINX} is missing: apt-get install nginx`);
  const dir = mkdtempSync(join(tmpdir(), 'trustgate-nginx-'));
  let ca: CertAuthority | undefined;
  let tls = '';
  if (opts.tls) {
    ca = makeCa(dir, 'trustgate test CA');
    const leaf = issueServerCert(ca, dir, '127.0.0.1', ['IP:127.0.0.1']);
    writeFileSync(join(dir, 'leaf.crt'), leaf.cert);
    writeFileSync(join(dir, 'leaf.key'), leaf.key, { mode: 0o600 });
    tls = ` ssl;\n    ssl_certificate ${dir}/leaf.crt;\n    ssl_certificate_key ${dir}/leaf.key`;
  }
  const [port] = await freePorts(1);
  const user = process.getuid?.() === 0 ? 'user root root;' : '';
  const accessLog = join(dir, 'access.log');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `${user}
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  log_format uri '$request_uri';
  access_log ${accessLog} uri;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  types { application/json json; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port}${tls};
    root ${root};
    location / { try_files $uri =404; }
  }
}
`,
  );
  writeFileSync(accessLog, '');
  const child = spawn(NGINX, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (b: Buffer) => (stderr += b.toString()));
  await waitForPort(port!, child, () => stderr).catch((e) => {
    child.kill('SIGKILL');
    throw e;
  });
  const pid = child.pid!;
  let seen = 0;
  let marks = 0;
  const base = `${opts.tls ? 'https' : 'http'}://127.0.0.1:${port}/`;
  return {
    url: base,
    ...(ca ? { ca } : {}),
    pid,
    async takeRequests() {
      // nginx logs a request once it is finished; one worker finishes requests in order, so a
      // marker request that is in the log means every earlier request is too.
      const mark = `/.mark-${++marks}`;
      await new Promise<void>((resolve, reject) => {
        const get = (opts.tls ? httpsGet : httpGet)(base + mark.slice(1), { ...(ca ? { ca: ca.certPem } : {}) }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        get.on('error', reject);
      });
      for (;;) {
        const lines = readFileSync(accessLog, 'utf8').split('\n').filter((l) => l !== '');
        const at = lines.indexOf(mark, seen);
        if (at >= 0) {
          const fresh = lines.slice(seen, at).filter((l) => !l.startsWith('/.mark-'));
          seen = at + 1;
          return fresh;
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async stop() {
      if (pidAlive(pid)) {
        // SIGQUIT: nginx's graceful stop; its master takes the worker with it.
        child.kill('SIGQUIT');
        const until = Date.now() + 5000;
        while (pidAlive(pid) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        if (pidAlive(pid)) child.kill('SIGKILL');
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
