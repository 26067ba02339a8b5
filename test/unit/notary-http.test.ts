import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { HttpSource } from '../../webhook/src/notary/http-source.js';
import { FetchError } from '../../webhook/src/notary/source.js';
import { InvalidNameError, validateGun, metadataFileName } from '../../webhook/src/notary/paths.js';
import { TokenCache, bearerChallenge, parseChallenges } from '../../webhook/src/notary/token-auth.js';

// ---------- throw-away PKI (openssl CLI), made fresh each run ----------

interface Pki {
  ca: string;
  otherCa: string;
  good: { key: string; cert: string }; // SAN 127.0.0.1 + localhost, signed by ca
  wrongHost: { key: string; cert: string }; // SAN other.example only, signed by ca
  expired: { key: string; cert: string }; // 2020, signed by ca
}

function makePki(dir: string): Pki {
  const run = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const newCa = (name: string) => {
    run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
    run('req', '-x509', '-new', '-key', `${name}.key`, '-sha256', '-days', '30', '-subj', `/CN=${name}`,
      '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign', '-out', `${name}.crt`);
  };
  newCa('ca');
  newCa('other-ca');
  mkdirSync(path.join(dir, 'db'));
  writeFileSync(path.join(dir, 'db/index.txt'), '');
  writeFileSync(path.join(dir, 'db/serial'), '01\n');
  writeFileSync(path.join(dir, 'ca.cnf'), [
    '[ca]', 'default_ca = d', '[d]', 'database = db/index.txt', 'serial = db/serial', 'new_certs_dir = db',
    'default_md = sha256', 'policy = p', 'unique_subject = no', '[p]', 'commonName = supplied', '',
  ].join('\n'));
  const leaf = (name: string, san: string, dates: string[]) => {
    run('ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`);
    run('req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`);
    writeFileSync(path.join(dir, `${name}.ext`), `[e]\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=${san}\n`);
    run('ca', '-batch', '-config', 'ca.cnf', '-cert', 'ca.crt', '-keyfile', 'ca.key', '-in', `${name}.csr`, '-out', `${name}.crt`,
      '-extfile', `${name}.ext`, '-extensions', 'e', '-notext', ...dates);
    return { key: readFileSync(path.join(dir, `${name}.key`), 'utf8'), cert: readFileSync(path.join(dir, `${name}.crt`), 'utf8') };
  };
  return {
    ca: readFileSync(path.join(dir, 'ca.crt'), 'utf8'),
    otherCa: readFileSync(path.join(dir, 'other-ca.crt'), 'utf8'),
    good: leaf('good', 'IP:127.0.0.1,DNS:localhost', ['-days', '30']),
    wrongHost: leaf('wrong-host', 'DNS:other.example', ['-days', '30']),
    expired: leaf('expired', 'IP:127.0.0.1', ['-startdate', '20200101000000Z', '-enddate', '20200201000000Z']),
  };
}

// ---------- in-process servers on 127.0.0.1 ----------

interface Seen {
  url: string;
  headers: http.IncomingHttpHeaders;
}

interface TestServer {
  url: string;
  port: number;
  seen: Seen[];
  close(): Promise<void>;
}

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

async function serve(handler: Handler, tls?: { key: string; cert: string }): Promise<TestServer> {
  const seen: Seen[] = [];
  const wrapped: Handler = (req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    handler(req, res);
  };
  const server = tls ? https.createServer({ key: tls.key, cert: tls.cert }, wrapped) : http.createServer(wrapped);
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `${tls ? 'https' : 'http'}://127.0.0.1:${port}`,
    port,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

async function expectFetchError(p: Promise<unknown>): Promise<FetchError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof FetchError) return e;
    throw new Error(`expected a FetchError, got ${String(e)}`);
  }
  throw new Error('expected a FetchError, but the fetch succeeded');
}

async function expectThrows(p: Promise<unknown> | (() => unknown)): Promise<Error> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

const GUN = 'localhost:5000/demo/app';
const HEX = 'ab'.repeat(32);
const TUF = `/v2/${GUN}/_trust/tuf`;

describe('notary HttpSource', function () {
  let dir: string;
  let pki: Pki;
  const servers: TestServer[] = [];
  const sources: HttpSource[] = [];

  before(function () {
    this.timeout(60_000);
    dir = mkdtempSync(path.join(tmpdir(), 'trustgate-notary-http-'));
    pki = makePki(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    for (const s of sources.splice(0)) s.close();
    await Promise.all(servers.splice(0).map((s) => s.close()));
  });

  const start = async (handler: Handler, tls: { key: string; cert: string } | null = pki.good) => {
    const s = await serve(handler, tls ?? undefined);
    servers.push(s);
    return s;
  };
  const source = (opts: Partial<ConstructorParameters<typeof HttpSource>[0]> & { url: string }) => {
    const s = new HttpSource({ gun: GUN, caBundle: opts.url.startsWith('https:') ? pki.ca : undefined, ...opts });
    sources.push(s);
    return s;
  };
  const fixed = (status: number, body: string | Buffer, headers: Record<string, string> = {}): Handler => (_req, res) => {
    res.writeHead(status, headers);
    res.end(body);
  };

  describe('URL paths and names', () => {
    it('builds the official client paths for current, versioned, hashed and delegated roles', () => {
      const s = new HttpSource({ url: 'https://notary.example:4443/', gun: GUN });
      const p = (r: Parameters<HttpSource['urlFor']>[0]) => s.urlFor(r).href;
      const base = `https://notary.example:4443${TUF}`;
      expect(p({ role: 'root', maxBytes: 1 })).to.equal(`${base}/root.json`);
      expect(p({ role: 'root', version: 3, maxBytes: 1 })).to.equal(`${base}/3.root.json`);
      expect(p({ role: 'snapshot', sha256Hex: HEX, maxBytes: 1 })).to.equal(`${base}/snapshot.${HEX}.json`);
      expect(p({ role: 'targets/releases', maxBytes: 1 })).to.equal(`${base}/targets/releases.json`);
      expect(p({ role: 'targets/releases/nightly', sha256Hex: HEX, maxBytes: 1 })).to.equal(`${base}/targets/releases/nightly.${HEX}.json`);
      expect(p({ role: 'targets/qa', version: 2, maxBytes: 1 })).to.equal(`${base}/2.targets/qa.json`);
      expect(s.server).to.equal('https://notary.example:4443');
    });

    it('keeps a path prefix of the server URL', () => {
      const s = new HttpSource({ url: 'https://proxy.example/notary/', gun: 'docker.io/library/nginx' });
      expect(s.urlFor({ role: 'timestamp', maxBytes: 1 }).href).to.equal('https://proxy.example/notary/v2/docker.io/library/nginx/_trust/tuf/timestamp.json');
    });

    it('accepts real GUNs and rejects ones that could leave the path', () => {
      for (const ok of ['localhost:5000/demo/app', 'docker.io/library/nginx', 'registry.example.com/a_b/c-d.e']) {
        expect(validateGun(ok)).to.equal(ok);
      }
      const bad = ['', 'a/../b', '..', 'a?x=1', 'a#frag', 'a b', 'a\tb', 'a\nb', 'a\u0000b', 'a\u007fb', 'a%2e%2e/b', 'a\\b', '/a', 'a/', 'a//b', 'a/./b', 'ä/b', 'a@b'];
      for (const gun of bad) {
        expect(() => validateGun(gun), JSON.stringify(gun)).to.throw(InvalidNameError);
        expect(() => new HttpSource({ url: 'https://n.example', gun }), JSON.stringify(gun)).to.throw(InvalidNameError);
      }
      expect(() => validateGun('a b')).to.throw(/whitespace/);
      expect(() => validateGun('a\u0001b')).to.throw(/control character/);
      expect(() => validateGun('x/../y')).to.throw(/"\.\."/);
    });

    it('rejects role names, versions and hashes that are not well formed, without sending anything', async () => {
      const srv = await start(fixed(200, '{}'));
      const s = source({ url: srv.url });
      const bad = [
        { role: '../root', maxBytes: 10 },
        { role: 'targets/../../x', maxBytes: 10 },
        { role: '/etc/passwd', maxBytes: 10 },
        { role: 'targets\\x', maxBytes: 10 },
        { role: 'Root', maxBytes: 10 },
        { role: 'targets/a.b', maxBytes: 10 },
        { role: 'targets/', maxBytes: 10 },
        { role: 'root?x', maxBytes: 10 },
        { role: 'root', version: 0, maxBytes: 10 },
        { role: 'root', version: 1.5, maxBytes: 10 },
        { role: 'root', sha256Hex: 'AB'.repeat(32), maxBytes: 10 },
        { role: 'root', sha256Hex: '../x', maxBytes: 10 },
        { role: 'root', version: 1, sha256Hex: HEX, maxBytes: 10 },
        { role: 'root', maxBytes: -1 },
        { role: 'root', maxBytes: Number.NaN },
      ];
      for (const req of bad) {
        const e = await expectThrows(s.fetch(req));
        expect(e, JSON.stringify(req)).to.be.instanceOf(InvalidNameError);
      }
      expect(metadataFileName({ role: 'targets/releases', maxBytes: 0 })).to.equal('targets/releases.json');
      expect(srv.seen).to.have.length(0);
    });

    it('rejects unusable server URLs and CA bundles at construction', () => {
      expect(() => new HttpSource({ url: 'ftp://n.example', gun: GUN })).to.throw(/https/);
      expect(() => new HttpSource({ url: 'not a url', gun: GUN })).to.throw(/not a valid URL/);
      expect(() => new HttpSource({ url: 'https://u:p@n.example', gun: GUN })).to.throw(/credentials/);
      expect(() => new HttpSource({ url: 'https://n.example/?x=1', gun: GUN })).to.throw(/query/);
      expect(() => new HttpSource({ url: 'https://n.example', gun: GUN, caBundle: 'garbage' })).to.throw(/no PEM certificate/);
      expect(() => new HttpSource({ url: 'https://n.example', gun: GUN, caBundle: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----' })).to.throw(/does not parse/);
      expect(() => new HttpSource({ url: 'http://n.example', gun: GUN, caBundle: pki.ca })).to.throw(/not https/);
      expect(() => new HttpSource({ url: 'https://n.example', gun: GUN, requestTimeoutMs: 0 })).to.throw(/requestTimeoutMs/);
      expect(() => new HttpSource({ url: 'https://n.example', gun: GUN, credentials: { username: 'a:b', password: 'x' } })).to.throw(/username/);
    });
  });

  describe('responses', () => {
    it('returns a 200 body byte for byte from the exact path, with no credentials attached', async () => {
      const body = Buffer.from('{"signed":{"_type":"Root"},"signatures":[]}\n\u00ff', 'latin1');
      const srv = await start(fixed(200, body, { 'Content-Type': 'text/plain; charset=utf-8' }));
      const got = await source({ url: srv.url }).fetch({ role: 'snapshot', sha256Hex: HEX, maxBytes: 1024 });
      expect(got).to.be.instanceOf(Uint8Array);
      expect(Buffer.from(got).equals(body)).to.equal(true);
      expect(srv.seen.map((r) => r.url)).to.deep.equal([`${TUF}/snapshot.${HEX}.json`]);
      expect(srv.seen[0]!.headers.authorization).to.equal(undefined);
    });

    it('reads a chunked body of exactly maxBytes, and refuses one byte more', async () => {
      const srv = await start((req, res) => {
        res.writeHead(200); // no Content-Length: chunked, as notary-server does above 2 KiB
        const n = req.url!.includes('root') ? 3000 : 3001;
        res.write(Buffer.alloc(1000, 0x61));
        res.write(Buffer.alloc(1000, 0x62));
        res.end(Buffer.alloc(n - 2000, 0x63));
      });
      const s = source({ url: srv.url });
      const ok = await s.fetch({ role: 'root', maxBytes: 3000 });
      expect(ok.length).to.equal(3000);
      const e = await expectFetchError(s.fetch({ role: 'targets', maxBytes: 3000 }));
      expect(e.kind).to.equal('too-large');
      expect(e.message).to.contain('3000');
    });

    it('stops reading an endless chunked body at the cap and closes the connection', async () => {
      let written = 0;
      let resolveClosed!: () => void;
      const closed = new Promise<void>((r) => (resolveClosed = r));
      const srv = await start((_req, res) => {
        res.writeHead(200);
        const chunk = Buffer.alloc(16 * 1024, 0x7b);
        let open = true;
        res.on('close', () => {
          open = false;
          resolveClosed();
        });
        const pump = () => {
          // Write until the socket pushes back, continue on drain, forever while open.
          while (open && res.write(chunk)) written += chunk.length;
          if (open) res.once('drain', () => {
            written += chunk.length;
            pump();
          });
        };
        pump();
      });
      const e = await expectFetchError(source({ url: srv.url, requestTimeoutMs: 20_000 }).fetch({ role: 'targets', maxBytes: 64 * 1024 }));
      expect(e.kind).to.equal('too-large');
      await closed; // the server saw the client go away instead of streaming on
      // Only what fits in socket buffers was ever produced, not an unbounded stream.
      expect(written).to.be.below(64 * 1024 * 1024);
    });

    it('fails on a Content-Length above the cap before any of the body arrives', async () => {
      const srv = await start((_req, res) => {
        res.writeHead(200, { 'Content-Length': String(10 * 1024 * 1024) });
        res.flushHeaders(); // headers only; the body never comes
      });
      const e = await expectFetchError(source({ url: srv.url, requestTimeoutMs: 20_000 }).fetch({ role: 'root', maxBytes: 4096 }));
      expect(e.kind).to.equal('too-large');
      expect(e.message).to.contain('Content-Length 10485760');
    });

    it('maps 404 to not-found and keeps the server\'s reason', async () => {
      const srv = await start(fixed(404, '{"errors":[{"code":"METADATA_NOT_FOUND","message":"You have requested metadata that does not exist.","detail":{}}]}', { 'Content-Type': 'application/json' }));
      const e = await expectFetchError(source({ url: srv.url }).fetch({ role: 'root', version: 7, maxBytes: 4096 }));
      expect(e.kind).to.equal('not-found');
      expect(e.status).to.equal(404);
      expect(e.role).to.equal('root');
      expect(e.server).to.equal(srv.url);
      expect(e.message).to.contain('METADATA_NOT_FOUND').and.to.contain('7.root.json').and.to.contain(srv.url).and.to.contain(GUN);
    });

    it('maps 500 to http with the status', async () => {
      const srv = await start(fixed(500, 'boom'));
      const e = await expectFetchError(source({ url: srv.url }).fetch({ role: 'timestamp', maxBytes: 4096 }));
      expect(e.kind).to.equal('http');
      expect(e.status).to.equal(500);
      expect(e.message).to.contain('HTTP 500').and.to.contain('boom').and.to.contain('timestamp.json');
    });

    it('refuses a non-200 success status', async () => {
      const srv = await start(fixed(206, 'partial'));
      const e = await expectFetchError(source({ url: srv.url }).fetch({ role: 'timestamp', maxBytes: 4096 }));
      expect(e.kind).to.equal('http');
      expect(e.status).to.equal(206);
    });

    it('does not follow redirects, not even to the same host', async () => {
      const elsewhere = await start(fixed(200, 'evil'));
      const srv = await start(fixed(302, '', { Location: `${elsewhere.url}/root.json` }));
      const e = await expectFetchError(source({ url: srv.url }).fetch({ role: 'root', maxBytes: 4096 }));
      expect(e.kind).to.equal('http');
      expect(e.status).to.equal(302);
      expect(e.message).to.contain('redirect').and.to.contain(elsewhere.url);
      expect(elsewhere.seen).to.have.length(0);
    });

    it('refuses a compressed body instead of passing transformed bytes on', async () => {
      const srv = await start(fixed(200, 'xxxx', { 'Content-Encoding': 'gzip' }));
      const e = await expectFetchError(source({ url: srv.url }).fetch({ role: 'root', maxBytes: 4096 }));
      expect(e.kind).to.equal('http');
      expect(e.message).to.contain('Content-Encoding');
    });

    it('reports a connection dropped in the middle of a body as unreachable', async () => {
      const srv = await start((req, res) => {
        res.writeHead(200, { 'Content-Length': '1000' });
        res.write(Buffer.alloc(10));
        setTimeout(() => req.socket.destroy(), 20);
      });
      const e = await expectFetchError(source({ url: srv.url }).fetch({ role: 'root', maxBytes: 4096 }));
      expect(e.kind).to.equal('unreachable');
    });

    it('reports a response that is not HTTP as an http error', async () => {
      const raw = net.createServer((sock) => {
        sock.resume(); // read the request so the client's close is seen
        sock.end('SSH-2.0-OpenSSH_9.2\r\n\r\n');
      });
      await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve));
      try {
        const port = (raw.address() as AddressInfo).port;
        const e = await expectFetchError(source({ url: `http://127.0.0.1:${port}` }).fetch({ role: 'root', maxBytes: 100 }));
        expect(e.kind).to.equal('http');
        expect(e.message).to.contain('malformed HTTP response');
      } finally {
        await new Promise<void>((resolve) => raw.close(() => resolve()));
      }
    });

    it('talks plain http only when the URL says so', async () => {
      const srv = await start(fixed(200, 'plain'), null);
      expect(srv.url.startsWith('http://')).to.equal(true);
      const got = await source({ url: srv.url }).fetch({ role: 'root', maxBytes: 100 });
      expect(Buffer.from(got).toString()).to.equal('plain');
    });
  });

  describe('deadlines', () => {
    it('cuts off a server that dribbles bytes at the total deadline, not an idle timeout', async () => {
      let resolveClosed!: () => void;
      const closed = new Promise<void>((r) => (resolveClosed = r));
      const srv = await start((_req, res) => {
        res.writeHead(200);
        let sent = 0;
        // A byte every 20 ms for 8 s: never idle long enough for an idle timer.
        const t = setInterval(() => {
          if (++sent >= 400) {
            clearInterval(t);
            res.end('x');
          } else res.write('x');
        }, 20);
        res.on('close', () => {
          clearInterval(t);
          resolveClosed();
        });
      });
      const e = await expectFetchError(source({ url: srv.url, requestTimeoutMs: 300 }).fetch({ role: 'timestamp', maxBytes: 4096 }));
      expect(e.kind).to.equal('timeout');
      expect(e.message).to.contain('300 ms');
      await closed;
    });

    it('times out a server that accepts and never answers', async () => {
      const srv = await start(() => undefined);
      const e = await expectFetchError(source({ url: srv.url, requestTimeoutMs: 200 }).fetch({ role: 'timestamp', maxBytes: 4096 }));
      expect(e.kind).to.equal('timeout');
      expect(srv.seen).to.have.length(1);
    });

    it('aborts when the caller\'s signal fires, long before its own timeout', async () => {
      let resolveClosed!: () => void;
      const closed = new Promise<void>((r) => (resolveClosed = r));
      const srv = await start((req) => req.socket.on('close', () => resolveClosed()));
      const ac = new AbortController();
      const p = source({ url: srv.url, requestTimeoutMs: 60_000 }).fetch({ role: 'timestamp', maxBytes: 4096 }, ac.signal);
      setTimeout(() => ac.abort(new Error('admission deadline')), 100);
      const e = await expectFetchError(p);
      expect(e.kind).to.equal('timeout');
      expect(e.message).to.contain('aborted by the caller').and.to.contain('admission deadline');
      await closed;
    });

    it('does not even connect with an already-aborted signal', async () => {
      const srv = await start(fixed(200, 'x'));
      const e = await expectFetchError(source({ url: srv.url }).fetch({ role: 'root', maxBytes: 10 }, AbortSignal.abort()));
      expect(e.kind).to.equal('timeout');
      expect(srv.seen).to.have.length(0);
    });
  });

  describe('connection and TLS failures', () => {
    it('maps a refused connection to unreachable', async () => {
      const srv = await serve(fixed(200, 'x'));
      const url = srv.url;
      await srv.close();
      const e = await expectFetchError(source({ url }).fetch({ role: 'root', maxBytes: 10 }));
      expect(e.kind).to.equal('unreachable');
      expect(e.message).to.contain('ECONNREFUSED').and.to.contain(url);
    });

    it('maps a DNS failure to unreachable', async () => {
      const e = await expectFetchError(source({ url: 'https://no-such-host.invalid' }).fetch({ role: 'root', maxBytes: 10 }));
      expect(e.kind).to.equal('unreachable');
    });

    it('refuses a server certificate from another CA', async () => {
      const srv = await start(fixed(200, 'x'));
      const e = await expectFetchError(source({ url: srv.url, caBundle: pki.otherCa }).fetch({ role: 'root', maxBytes: 10 }));
      expect(e.kind).to.equal('tls');
      expect(e.message).to.match(/certificate/i);
      expect(srv.seen).to.have.length(0);
    });

    it('refuses a private CA when no bundle is configured (system roots only)', async () => {
      const srv = await start(fixed(200, 'x'));
      const s = new HttpSource({ url: srv.url, gun: GUN });
      sources.push(s);
      const e = await expectFetchError(s.fetch({ role: 'root', maxBytes: 10 }));
      expect(e.kind).to.equal('tls');
    });

    it('refuses a certificate for another host name', async () => {
      const srv = await start(fixed(200, 'x'), pki.wrongHost);
      const e = await expectFetchError(source({ url: srv.url }).fetch({ role: 'root', maxBytes: 10 }));
      expect(e.kind).to.equal('tls');
      // In words, naming the certificate the server presented and whether our CA was in play.
      expect(e.message).to.match(/the server's certificate CN=.* \(issued by .*\) is not issued for this host name/).and.contain('checked against the caBundle given');
    });

    it('refuses an expired certificate', async () => {
      const srv = await start(fixed(200, 'x'), pki.expired);
      const e = await expectFetchError(source({ url: srv.url }).fetch({ role: 'root', maxBytes: 10 }));
      expect(e.kind).to.equal('tls');
      expect(e.message).to.match(/the server's certificate CN=.* has expired/).and.not.contain('CERT_HAS_EXPIRED');
    });

    it('reports TLS spoken to a plain HTTP port as tls', async () => {
      const srv = await start(fixed(200, 'x'), null);
      const e = await expectFetchError(source({ url: srv.url.replace('http:', 'https:') }).fetch({ role: 'root', maxBytes: 10 }));
      expect(e.kind).to.equal('tls');
    });
  });

  describe('token auth', () => {
    const scope = `repository:${GUN}:pull`;
    interface Realm {
      srv: TestServer;
      issued: string[];
    }
    const realm = async (respond?: Handler, tls: { key: string; cert: string } | null = pki.good): Promise<Realm> => {
      const issued: string[] = [];
      const srv = await start(
        respond ??
          ((_req, res) => {
            const token = `tok-${issued.length + 1}.abc_DEF-~+/=`;
            issued.push(token);
            res.writeHead(200, { 'Content-Type': 'application/json' });
            res.end(JSON.stringify({ token, expires_in: 300 }));
          }),
        tls,
      );
      return { srv, issued };
    };
    const protectedNotary = (realmUrl: string, valid: () => string[], extra = '') =>
      start((req, res) => {
        const auth = req.headers.authorization ?? '';
        if (auth.startsWith('Bearer ') && valid().includes(auth.slice(7))) {
          res.writeHead(200);
          res.end(`body of ${req.url}`);
          return;
        }
        const err = auth.startsWith('Bearer ') ? ',error="invalid_token"' : '';
        res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${realmUrl}",service="notary-server",scope="${scope}"${err}${extra}` });
        res.end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      });

    it('answers a 401 challenge with an anonymous token and retries once', async () => {
      const r = await realm();
      const notary = await protectedNotary(`${r.srv.url}/token`, () => r.issued);
      const got = await source({ url: notary.url }).fetch({ role: 'root', maxBytes: 4096 });
      expect(Buffer.from(got).toString()).to.equal(`body of ${TUF}/root.json`);
      expect(r.srv.seen).to.have.length(1);
      const tokenReq = new URL(r.srv.seen[0]!.url, r.srv.url);
      expect(tokenReq.pathname).to.equal('/token');
      expect(tokenReq.searchParams.get('service')).to.equal('notary-server');
      expect(tokenReq.searchParams.get('scope')).to.equal(scope);
      expect(tokenReq.searchParams.has('account')).to.equal(false);
      expect(r.srv.seen[0]!.headers.authorization).to.equal(undefined);
      expect(notary.seen.map((s) => s.headers.authorization)).to.deep.equal([undefined, `Bearer ${r.issued[0]}`]);
    });

    it('sends Basic credentials to the realm only, never to the notary server', async () => {
      const r = await realm();
      const notary = await protectedNotary(`${r.srv.url}/token?existing=1`, () => r.issued);
      const s = source({ url: notary.url, credentials: { username: 'alice', password: 's3cret:x' } });
      await s.fetch({ role: 'root', maxBytes: 4096 });
      const tokenReq = new URL(r.srv.seen[0]!.url, r.srv.url);
      expect(tokenReq.searchParams.get('account')).to.equal('alice');
      expect(tokenReq.searchParams.get('existing')).to.equal('1');
      expect(r.srv.seen[0]!.headers.authorization).to.equal(`Basic ${Buffer.from('alice:s3cret:x').toString('base64')}`);
      for (const seen of notary.seen) expect(seen.headers.authorization ?? '').not.to.match(/^Basic/);
    });

    it('reuses a token across requests and sends it up front', async () => {
      const r = await realm();
      const notary = await protectedNotary(`${r.srv.url}/token`, () => r.issued);
      const s = source({ url: notary.url });
      await s.fetch({ role: 'root', maxBytes: 4096 });
      await s.fetch({ role: 'timestamp', maxBytes: 4096 });
      await s.fetch({ role: 'snapshot', sha256Hex: HEX, maxBytes: 4096 });
      expect(r.issued).to.have.length(1);
      // one 401 + retry for the first fetch, then one request each
      expect(notary.seen).to.have.length(4);
      expect(notary.seen.slice(2).map((x) => x.headers.authorization)).to.deep.equal([`Bearer ${r.issued[0]}`, `Bearer ${r.issued[0]}`]);
    });

    it('shares one token request among concurrent fetches', async () => {
      const r = await realm();
      const notary = await protectedNotary(`${r.srv.url}/token`, () => r.issued);
      const s = source({ url: notary.url });
      const all = await Promise.all([1, 2, 3, 4, 5].map((v) => s.fetch({ role: 'root', version: v, maxBytes: 4096 })));
      expect(all.map((b) => Buffer.from(b).toString())).to.deep.equal([1, 2, 3, 4, 5].map((v) => `body of ${TUF}/${v}.root.json`));
      expect(r.issued).to.have.length(1);
    });

    it('asks for a new token once the cached one is about to expire', async () => {
      let now = 1_000_000;
      const cache = new TokenCache({ now: () => now });
      const issued: string[] = [];
      const r = await realm((_req, res) => {
        issued.push(`t${issued.length}`);
        res.writeHead(200);
        res.end(JSON.stringify({ access_token: issued.at(-1), expires_in: 60 }));
      });
      const notary = await protectedNotary(`${r.srv.url}/token`, () => issued);
      const s = source({ url: notary.url, tokenCache: cache });
      await s.fetch({ role: 'root', maxBytes: 4096 });
      now += 49_000; // inside 60 s minus the 10 s margin
      await s.fetch({ role: 'root', maxBytes: 4096 });
      expect(issued).to.deep.equal(['t0']);
      now += 2_000; // past it
      await s.fetch({ role: 'root', maxBytes: 4096 });
      expect(issued).to.deep.equal(['t0', 't1']);
      expect(notary.seen.at(-1)!.headers.authorization).to.equal('Bearer t1');
    });

    it('gets a fresh token when the server rejects the cached one', async () => {
      const r = await realm();
      const revoked = new Set<string>();
      const notary = await protectedNotary(`${r.srv.url}/token`, () => r.issued.filter((t) => !revoked.has(t)));
      const s = source({ url: notary.url });
      await s.fetch({ role: 'root', maxBytes: 4096 });
      revoked.add(r.issued[0]!);
      await s.fetch({ role: 'root', maxBytes: 4096 });
      expect(r.issued).to.have.length(2);
      // the revoked token was sent once up front, then the new one after the 401
      expect(notary.seen.slice(2).map((x) => x.headers.authorization)).to.deep.equal([`Bearer ${r.issued[0]}`, `Bearer ${r.issued[1]}`]);
    });

    it('reports auth when the token is refused after the retry, and forgets that token', async () => {
      const r = await realm();
      const notary = await protectedNotary(`${r.srv.url}/token`, () => []);
      const s = source({ url: notary.url });
      const e = await expectFetchError(s.fetch({ role: 'targets', maxBytes: 4096 }));
      expect(e.kind).to.equal('auth');
      expect(e.status).to.equal(401);
      expect(e.message).to.contain('invalid_token').and.to.contain(r.srv.url).and.to.contain('targets.json');
      expect(notary.seen).to.have.length(2); // exactly one retry
      await expectFetchError(s.fetch({ role: 'targets', maxBytes: 4096 }));
      expect(notary.seen[2]!.headers.authorization).to.equal(undefined);
    });

    it('maps a bad token endpoint to clear errors', async () => {
      const cases: Array<[Handler, string, RegExp]> = [
        [fixed(500, 'down'), 'http', /HTTP 500/],
        [fixed(401, 'no'), 'auth', /refused an anonymous token/],
        [fixed(200, 'not json'), 'auth', /not JSON/],
        [fixed(200, '{"expires_in":60}'), 'auth', /no "token"/],
        [fixed(200, '{"token":"a b\\r\\nX-Evil: 1"}'), 'auth', /not allowed/],
        [fixed(200, '{"token":"' + 'a'.repeat(70 * 1024) + '"}'), 'auth', /limit/],
      ];
      for (const [handler, kind, msg] of cases) {
        const r = await realm(handler);
        const notary = await protectedNotary(`${r.srv.url}/token`, () => []);
        const e = await expectFetchError(source({ url: notary.url }).fetch({ role: 'root', maxBytes: 4096 }));
        expect(e.kind, msg.source).to.equal(kind);
        expect(e.message).to.match(msg).and.to.contain('token service');
        expect(notary.seen, msg.source).to.have.length(1); // no retry without a token
      }
    });

    it('times out a stalled token service at the fetch deadline', async () => {
      const r = await realm(() => undefined);
      const notary = await protectedNotary(`${r.srv.url}/token`, () => []);
      const e = await expectFetchError(source({ url: notary.url, requestTimeoutMs: 300 }).fetch({ role: 'root', maxBytes: 4096 }));
      expect(e.kind).to.equal('timeout');
      expect(e.message).to.contain('token');
    });

    it('refuses a plain-http realm for an https server and sends nothing there', async () => {
      const r = await realm(undefined, null);
      const notary = await protectedNotary(`${r.srv.url}/token`, () => r.issued);
      const e = await expectFetchError(source({ url: notary.url, credentials: { username: 'a', password: 'b' } }).fetch({ role: 'root', maxBytes: 4096 }));
      expect(e.kind).to.equal('auth');
      expect(e.message).to.contain('plain http');
      expect(r.srv.seen).to.have.length(0);
    });

    it('refuses to send credentials over plain http to another host', async () => {
      const r = await realm(undefined, null);
      const notary = await start((req, res) => {
        res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="${r.srv.url.replace('127.0.0.1', 'localhost')}/token",service="s"` });
        res.end();
      }, null);
      const e = await expectFetchError(source({ url: notary.url, credentials: { username: 'a', password: 'b' } }).fetch({ role: 'root', maxBytes: 4096 }));
      expect(e.kind).to.equal('auth');
      expect(e.message).to.contain('another host');
      expect(r.srv.seen).to.have.length(0);
    });

    it('treats 401 without a Bearer challenge and 403 as auth failures', async () => {
      const basic = await start(fixed(401, '', { 'WWW-Authenticate': 'Basic realm="x"' }));
      const e1 = await expectFetchError(source({ url: basic.url }).fetch({ role: 'root', maxBytes: 10 }));
      expect(e1.kind).to.equal('auth');
      expect(e1.message).to.contain('Basic realm');
      const forbidden = await start(fixed(403, ''));
      const e2 = await expectFetchError(source({ url: forbidden.url }).fetch({ role: 'root', maxBytes: 10 }));
      expect(e2.kind).to.equal('auth');
      expect(e2.status).to.equal(403);
    });

    describe('challenge parsing', () => {
      it('reads quoted values containing commas, escapes and several parameters', () => {
        const c = bearerChallenge(['Bearer realm="https://a.example/token?x=1,2",service="notary \\"server\\"",scope="repository:h:5000/a/b:pull,push"']);
        expect(c).to.deep.equal({ realm: 'https://a.example/token?x=1,2', service: 'notary "server"', scope: 'repository:h:5000/a/b:pull,push' });
      });

      it('finds the Bearer challenge among others, case-insensitively, with spaces and token68', () => {
        const c = bearerChallenge(['Basic dXNlcjpwYXNz==, BEARER  Realm = "https://r.example/t" , Service=svc, error="invalid_token"']);
        expect(c).to.deep.equal({ realm: 'https://r.example/t', service: 'svc', error: 'invalid_token' });
        expect(bearerChallenge(['Basic realm="x"', 'Bearer realm="https://second.example"'])?.realm).to.equal('https://second.example');
      });

      it('keeps the first of repeated parameters and survives garbage', () => {
        expect(bearerChallenge(['Bearer realm="https://good.example",realm="https://evil.example"'])?.realm).to.equal('https://good.example');
        expect(bearerChallenge(['Bearer realm="unterminated'])).to.equal(undefined);
        expect(bearerChallenge(['Bearer service="x"'])).to.equal(undefined);
        expect(bearerChallenge([''])).to.equal(undefined);
        expect(parseChallenges(['"=,,=', '===', ',,,'])).to.be.an('array');
      });
    });
  });
});
