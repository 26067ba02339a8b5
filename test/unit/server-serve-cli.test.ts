// `trustgate serve` flags, and runServe wiring an injected verifier into a live server.
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { parseServeArgs, runServe, type ServeOptions } from '../../webhook/src/cli/serve.js';
import { UsageError } from '../../webhook/src/cli/usage.js';
import { loadLimitsOf } from '../../webhook/src/cli/settings.js';
import { call, postJson } from '../fixtures/admission/https-client.js';
import { captureLogger, failed, failure, fixture, TableVerifier } from '../fixtures/admission/support.js';

const MiB = 1024 * 1024;

/** The load-limit fields of a ServeOptions, for comparing whole objects. */
const LIMIT_KEYS = ['verifyWorkers', 'workerMemoryMb', 'maxTotalMibInFlight', 'clusterServerMaxLoads', 'clusterServerMaxMibInFlight', 'clusterServerMaxMetadataMib', 'namespacedServerMaxLoads', 'namespacedServerMaxMibInFlight', 'namespacedServerMaxMetadataMib'] as const;
function limitsOf(o: ServeOptions): Pick<ServeOptions, (typeof LIMIT_KEYS)[number]> {
  return Object.fromEntries(LIMIT_KEYS.map((k) => [k, o[k]])) as Pick<ServeOptions, (typeof LIMIT_KEYS)[number]>;
}

describe('cli: serve', () => {
  describe('parseServeArgs', () => {
    it('has the documented defaults', () => {
      expect(parseServeArgs(['--policy-dir', '/p'])).to.deep.equal({
        policyDir: '/p',
        kubernetes: false,
        port: 8443,
        host: '0.0.0.0',
        deadlineMs: 8000,
        allowUnmatched: false,
        exempt: [],
        logLevel: 'info',
        refreshIntervalMs: 60_000,
        podNamespace: 'trustgate',
        auditIntervalMs: 0,
        expiryWarningMs: 604_800_000,
        auditLease: 'trustgate-audit',
        drainMs: 0,
        tlsDnsNames: [],
        mutatingWebhooks: [],
        validatingWebhooks: [],
        verifyWorkers: 1,
        workerMemoryMb: 64,
        maxTotalMibInFlight: 48,
        clusterServerMaxLoads: 16,
        clusterServerMaxMibInFlight: 48,
        clusterServerMaxMetadataMib: 32,
        namespacedServerMaxLoads: 2,
        namespacedServerMaxMibInFlight: 16,
        namespacedServerMaxMetadataMib: 8,
      });
      expect(loadLimitsOf(parseServeArgs(['--kubernetes']))).to.deep.equal({
        workers: 1,
        workerMemoryMb: 64,
        maxTotalBytesInFlight: 48 * MiB,
        cluster: { maxConcurrentLoads: 16, maxBytesInFlight: 48 * MiB, maxMetadataBytes: 32 * MiB },
        namespaced: { maxConcurrentLoads: 2, maxBytesInFlight: 16 * MiB, maxMetadataBytes: 8 * MiB },
      });
    });

    it('reads the limits on loading trust data, in MiB', () => {
      const o = parseServeArgs([
        '--kubernetes', '--verify-workers', '2', '--worker-memory-mb', '48', '--max-total-mib-in-flight', '100',
        '--cluster-server-max-loads', '4', '--cluster-server-max-mib-in-flight', '80', '--cluster-server-max-metadata-mib', '32',
        '--namespaced-server-max-loads', '1', '--namespaced-server-max-mib-in-flight', '10', '--namespaced-server-max-metadata-mib', '2',
      ]);
      expect(loadLimitsOf(o)).to.deep.equal({
        workers: 2,
        workerMemoryMb: 48,
        maxTotalBytesInFlight: 100 * MiB,
        cluster: { maxConcurrentLoads: 4, maxBytesInFlight: 80 * MiB, maxMetadataBytes: 32 * MiB },
        namespaced: { maxConcurrentLoads: 1, maxBytesInFlight: 10 * MiB, maxMetadataBytes: 2 * MiB },
      });
    });

    it('reads every flag, --exempt repeatable, --deadline in seconds', () => {
      const o = parseServeArgs([
        '--kubernetes', '--port', '9443', '--host', '127.0.0.1', '--tls-cert', 'c.pem', '--tls-key', 'k.pem', '--deadline', '2.5',
        '--allow-unmatched', '--exempt', 'registry.k8s.io/**', '--exempt', 'docker.io/library/pause:*', '--state-file', '/var/lib/tg/state.json', '--log-level', 'debug',
      ]);
      expect(o).to.deep.equal({
        kubernetes: true, port: 9443, host: '127.0.0.1', tlsCert: 'c.pem', tlsKey: 'k.pem', deadlineMs: 2500, allowUnmatched: true,
        exempt: ['registry.k8s.io/**', 'docker.io/library/pause:*'], stateFile: '/var/lib/tg/state.json', logLevel: 'debug',
        refreshIntervalMs: 60_000, podNamespace: 'trustgate', drainMs: 0, tlsDnsNames: [], mutatingWebhooks: [], validatingWebhooks: [],
        auditIntervalMs: 0, expiryWarningMs: 604_800_000, auditLease: 'trustgate-audit',
        ...limitsOf(parseServeArgs(['--kubernetes'])),
      } satisfies ServeOptions);
    });

    const bad: Array<[string[], RegExp]> = [
      [[], /exactly one policy source/],
      [['--policy-dir', '/p', '--kubernetes'], /exactly one policy source/],
      [['--policy-dir', ''], /must not be empty/],
      [['--kubernetes', '--tls-cert', 'c.pem'], /go together/],
      [['--kubernetes', '--port', '70000'], /--port must be an integer 0-65535/],
      [['--kubernetes', '--port', '84x'], /--port/],
      [['--kubernetes', '--deadline', '0'], /--deadline must be seconds in \(0, 30\]/],
      [['--kubernetes', '--deadline', '31'], /--deadline/],
      [['--kubernetes', '--deadline=-1'], /--deadline/],
      [['--kubernetes', '--log-level', 'loud'], /--log-level must be one of debug, info, warn, error/],
      [['--kubernetes', '--exempt', ' '], /--exempt must be an image pattern .*whitespace/],
      [['--kubernetes', 'extra'], /no positional arguments/],
      [['--kubernetes', '--metrics-port', '0'], /--metrics-port must be an integer 1-65535/],
      [['--kubernetes', '--port', '9000', '--metrics-port', '9000'], /--metrics-port 9000 is the HTTPS port/],
      [['--kubernetes', '--audit-interval=-5'], /--audit-interval must be seconds in 0-604800/],
      [['--kubernetes', '--drain-seconds=-1'], /--drain-seconds must be seconds in 0-300/],
      [['--kubernetes', '--drain-seconds', '301'], /--drain-seconds/],
      [['--policy-dir', '/p', '--tls-secret', 'tg-tls', '--tls-dns-name', 'a.b.svc'], /needs --kubernetes/],
      [['--kubernetes', '--tls-secret', 'tg-tls'], /at least one --tls-dns-name/],
      [['--kubernetes', '--tls-secret', 'Bad_Name', '--tls-dns-name', 'a.b.svc'], /must be a Secret name/],
      [['--kubernetes', '--tls-secret', 'tg-tls', '--tls-dns-name', 'a', '--tls-cert', 'c', '--tls-key', 'k'], /either --tls-secret or --tls-cert/],
      [['--kubernetes', '--mutating-webhook', 'tg'], /--mutating-webhook goes with --tls-secret/],
      [['--kubernetes', '--worker-memory-mb', '8'], /--worker-memory-mb must be an integer from 16 to 4096, got "8"/],
      [['--kubernetes', '--namespaced-server-max-metadata-mib', '65'], /--namespaced-server-max-metadata-mib must be an integer from 1 to 64/],
      [['--kubernetes', '--namespaced-server-max-loads', '1.5'], /--namespaced-server-max-loads must be an integer/],
    ];
    for (const [argv, msg] of bad) {
      it(`rejects ${JSON.stringify(argv)}`, () => {
        expect(() => parseServeArgs(argv)).to.throw(UsageError, msg);
      });
    }

    it('reads self-managed TLS and the drain period', () => {
      const o = parseServeArgs([
        '--kubernetes', '--tls-secret', 'tg-tls', '--tls-dns-name', 'tg.ns.svc', '--tls-dns-name', 'tg.ns.svc.cluster.local',
        '--mutating-webhook', 'tg', '--validating-webhook', 'tg', '--validating-webhook', 'tg-policies', '--drain-seconds', '12.5',
      ]);
      expect(o).to.include({ tlsSecret: 'tg-tls', drainMs: 12_500 });
      expect(o.tlsDnsNames).to.deep.equal(['tg.ns.svc', 'tg.ns.svc.cluster.local']);
      expect(o.mutatingWebhooks).to.deep.equal(['tg']);
      expect(o.validatingWebhooks).to.deep.equal(['tg', 'tg-policies']);
    });

    it('rejects unknown flags', () => {
      expect(() => parseServeArgs(['--kubernetes', '--verbose'])).to.throw(/Unknown option '--verbose'/);
    });
  });

  describe('runServe', () => {
    it('serves /mutate with the injected verifier, reports readiness, logs exemptions and prints the certificate', async () => {
      const verifier = new TableVerifier({ 'nginx:1.25': failed('nginx:1.25', failure('enforce', 'unsigned')) });
      let loaded = false;
      let closed = false;
      let seen: ServeOptions | undefined;
      const printed: string[] = [];
      const log = captureLogger();
      const handle = await runServe(['--policy-dir', '/policies', '--port', '0', '--host', '127.0.0.1', '--deadline', '3', '--exempt', 'registry.k8s.io/**'], {
        createVerifier: (options, ctx) => {
          seen = options;
          expect(ctx.metrics).to.be.an('object');
          return { verifier, ready: () => loaded, close: () => void (closed = true) };
        },
        log,
        print: (l) => printed.push(l),
      });
      try {
        expect(seen?.deadlineMs).to.equal(3000);
        expect(printed).to.have.length(1);
        expect(printed[0]).to.contain(`https://127.0.0.1:${handle.port}`).and.contain(handle.server.certFile).and.contain(handle.server.fingerprint());
        expect(log.lines.some((l) => l.level === 'warn' && JSON.stringify(l.fields['exempt']) === '["registry.k8s.io/**"]')).to.equal(true);

        const ca = readFileSync(handle.server.certFile);
        expect((await call({ port: handle.port, path: '/readyz', ca })).status).to.equal(503);
        loaded = true;
        expect((await call({ port: handle.port, path: '/readyz', ca })).status).to.equal(200);

        const r = await postJson(handle.port, '/mutate', fixture('pod-create.json'), { ca });
        const out = JSON.parse(r.body);
        expect(out.response.allowed).to.equal(false);
        expect(out.response.status.message).to.contain('container "proxy" image "nginx:1.25"');
        const metrics = await call({ port: handle.port, path: '/metrics', ca });
        expect(metrics.body).to.contain('trustgate_admissions_total{operation="CREATE",result="denied",mode="enforce",webhook="mutate"} 1');
      } finally {
        await handle.close();
      }
      expect(closed).to.equal(true);
    });
  });
});
