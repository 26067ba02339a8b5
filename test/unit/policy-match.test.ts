// Image pattern globs: the matching table, the attacker's side (look-alike repositories and
// registries, '*' crossing '/', regex metacharacters), syntax errors and qualification hints.
import { expect } from 'chai';
import { compileImagePattern, ImagePatternError, imagePatternProblems, matchesImage } from '../../webhook/src/policy/match.js';

const D = `sha256:${'0123456789abcdef'.repeat(4)}`;

describe('policy image patterns', () => {
  describe('matching table', () => {
    const table: [pattern: string, reference: string, matches: boolean][] = [
      // A pattern without a tag covers every tag and digest of the repository.
      ['docker.io/library/nginx', 'docker.io/library/nginx:1.25', true],
      ['docker.io/library/nginx', `docker.io/library/nginx@${D}`, true],
      ['docker.io/library/nginx', `docker.io/library/nginx:1.25@${D}`, true],
      ['docker.io/library/nginx', 'docker.io/library/nginx-unprivileged:1', false],
      ['docker.io/library/nginx', 'docker.io/library/nginx/sub:1', false],
      // With a tag: that tag only, and a digest-only reference carries no tag.
      ['docker.io/library/nginx:1.25', 'docker.io/library/nginx:1.25', true],
      ['docker.io/library/nginx:1.25', `docker.io/library/nginx:1.25@${D}`, true],
      ['docker.io/library/nginx:1.25', 'docker.io/library/nginx:1.26', false],
      ['docker.io/library/nginx:1.25', 'docker.io/library/nginx:1.25.1', false],
      ['docker.io/library/nginx:1.25', `docker.io/library/nginx@${D}`, false],
      ['docker.io/library/nginx:1.*', 'docker.io/library/nginx:1.25', true],
      ['docker.io/library/nginx:1.?5', 'docker.io/library/nginx:1.25', true],
      ['docker.io/library/nginx:1.?5', 'docker.io/library/nginx:1.255', false],
      ['docker.io/library/nginx:v*', 'docker.io/library/nginx:1.25', false],
      // '*' stays within one segment.
      ['registry.example.com/team/*', 'registry.example.com/team/api:1', true],
      ['registry.example.com/team/*', 'registry.example.com/team/api/worker:1', false],
      ['registry.example.com/team/*', 'registry.example.com/team:1', false],
      ['registry.example.com/team/api-*', 'registry.example.com/team/api-worker:1', true],
      ['registry.example.com/team/api-*', 'registry.example.com/team/api:1', false],
      ['registry.example.com/*/api', 'registry.example.com/team/api:1', true],
      ['registry.example.com/*/api', 'registry.example.com/a/b/api:1', false],
      ['registry.example.com/team/ap?', 'registry.example.com/team/api:1', true],
      ['registry.example.com/team/ap?', 'registry.example.com/team/ap:1', false],
      // '**' spans segments: trailing means "anything below", in the middle zero or more segments.
      ['registry.example.com/payments/**', 'registry.example.com/payments/api:1', true],
      ['registry.example.com/payments/**', 'registry.example.com/payments/a/b/c:1', true],
      ['registry.example.com/payments/**', `registry.example.com/payments/a@${D}`, true],
      ['registry.example.com/payments/**', 'registry.example.com/payments:1', false],
      ['registry.example.com/**/api', 'registry.example.com/api:1', true],
      ['registry.example.com/**/api', 'registry.example.com/a/api:1', true],
      ['registry.example.com/**/api', 'registry.example.com/a/b/api:1', true],
      ['registry.example.com/**/api', 'registry.example.com/a/b/api2:1', false],
      ['registry.example.com/**/api', 'registry.example.com/xapi:1', false],
      ['registry.example.com/**', 'registry.example.com/anything/at/all:x', true],
      ['registry.example.com/payments/**:v*', 'registry.example.com/payments/api:v2', true],
      ['registry.example.com/payments/**:v*', 'registry.example.com/payments/api:2', false],
      // Registries with ports: the ':' before the first '/' is not a tag.
      ['localhost:5000/demo/app', 'localhost:5000/demo/app:latest', true],
      ['localhost:5000/demo/app', 'localhost:5001/demo/app:latest', false],
      ['localhost:5000/demo/app:v1', 'localhost:5000/demo/app:v1', true],
      ['[::1]:5000/demo/**', '[::1]:5000/demo/app:1', true],
    ];
    for (const [pattern, reference, want] of table) {
      it(`${pattern} ${want ? 'matches' : 'does not match'} ${reference}`, () => {
        expect(compileImagePattern(pattern).matches(reference)).to.equal(want);
      });
    }
  });

  describe("an attacker's references do not match", () => {
    const payments = compileImagePattern('registry.example.com/payments/**');
    it('a look-alike repository next to the pattern', () => {
      expect(payments.matches('registry.example.com/payments-evil/x:1')).to.equal(false);
      expect(payments.matches('registry.example.com/paymentsx/x:1')).to.equal(false);
    });
    it('a look-alike registry whose name starts with the pattern', () => {
      expect(payments.matches('registry.example.com.evil.io/payments/x:1')).to.equal(false);
      expect(payments.matches('registry.example.com:443/payments/x:1')).to.equal(false);
      expect(payments.matches('evil.io/registry.example.com/payments/x:1')).to.equal(false);
    });
    it("a '*' never crosses '/'", () => {
      expect(matchesImage('registry.example.com/*', 'registry.example.com/a/b:1')).to.equal(false);
      expect(matchesImage('registry.example.com/a*', 'registry.example.com/a/b:1')).to.equal(false);
      expect(matchesImage('registry.example.com/a?b', 'registry.example.com/a/b:1')).to.equal(false);
    });
    it('regex metacharacters in a pattern are literal', () => {
      expect(matchesImage('registry.example.com/a.b', 'registry.example.com/axb:1')).to.equal(false);
      expect(matchesImage('registry.example.com/a.b', 'registry.example.com/a.b:1')).to.equal(true);
      expect(matchesImage('registry.example.com/a+', 'registry.example.com/aaa:1')).to.equal(false);
      expect(matchesImage('registry.example.com/a+', 'registry.example.com/a+:1')).to.equal(true);
      expect(matchesImage('registry.example.com/(a|b)', 'registry.example.com/a:1')).to.equal(false);
      expect(matchesImage('registry.example.com/[ab]', 'registry.example.com/a:1')).to.equal(false);
      expect(matchesImage('registry.example.com/a$', 'registry.example.com/a:1')).to.equal(false);
      expect(matchesImage('registry.example.com/.*', 'registry.example.com/anything:1')).to.equal(false);
    });
    it('a tag pattern does not reach into the digest', () => {
      expect(matchesImage('registry.example.com/a:sha256*', `registry.example.com/a@${D}`)).to.equal(false);
    });
    it('a pathological pattern answers without backtracking blow-up', () => {
      // 40 stars against a long non-matching name: exponential for a backtracking matcher.
      const pattern = `registry.example.com/${'a*'.repeat(40)}b`;
      expect(matchesImage(pattern, `registry.example.com/${'a'.repeat(200)}:1`)).to.equal(false);
      expect(matchesImage(pattern, `registry.example.com/${'a'.repeat(200)}b:1`)).to.equal(true);
    });
    it('a non-string reference matches nothing', () => {
      expect(payments.matches(undefined as unknown as string)).to.equal(false);
    });
  });

  describe('syntax', () => {
    const bad: [string, RegExp][] = [
      ['', /empty pattern/],
      ['registry.example.com/team**', /whole path segment/],
      ['registry.example.com/**x/y', /whole path segment/],
      ['registry.example.com//x', /empty path segment/],
      ['registry.example.com/x/', /empty path segment/],
      ['registry.example.com/x:', /empty tag/],
      ['registry.example.com/x:**', /'\*\*' cannot appear in a tag/],
      [`registry.example.com/x@${D}`, /digests/],
      ['registry.example.com/x y', /whitespace/],
      ['x'.repeat(600), /longer than 512/],
    ];
    for (const [pattern, reason] of bad) {
      it(`rejects ${JSON.stringify(pattern.slice(0, 40))}`, () => {
        expect(() => compileImagePattern(pattern)).to.throw(ImagePatternError, reason);
        expect(matchesImage(pattern, 'registry.example.com/x:1')).to.equal(false);
      });
    }
  });

  describe('qualification problems, with hints', () => {
    const cases: [string, RegExp][] = [
      ['nginx', /registry domain.*"docker\.io\/library\/nginx"/],
      ['library/nginx', /registry domain.*"docker\.io\/library\/nginx"/],
      ['myuser/app', /registry domain.*"docker\.io\/myuser\/app"/],
      ['docker.io/nginx', /write "docker\.io\/library\/nginx"/],
      ['docker.io/nginx:1.25', /write "docker\.io\/library\/nginx:1\.25"/],
      ['index.docker.io/library/nginx', /normalized to docker\.io: write "docker\.io\/library\/nginx"/],
      ['registry.hub.docker.com/user/app', /normalized to docker\.io: write "docker\.io\/user\/app"/],
      ['registry-1.docker.io/library/**', /normalized to docker\.io: write "docker\.io\/library\/\*\*"/],
      // One spelling per registry: the default HTTPS port is always left out.
      ['registry.test:443/strict/**', /port 443 is the HTTPS default.*write "registry\.test\/strict\/\*\*"/],
      ['docker.io:443/library/nginx:1.25', /port 443 is the HTTPS default.*write "docker\.io\/library\/nginx:1\.25"/],
      ['[::1]:443/x', /write "\[::1\]\/x"/],
      ['*.example.com/team/**', /must be literal/],
      ['registry.example.*/team', /must be literal/],
      ['Registry.example.com/team', /lowercase/],
      ['registry.example.com/Team', /lowercase/],
      ['registry.example.com:0/x', /port/],
      ['registry.example.com:99999/x', /port/],
      ['registry.example.com', /registry domain/],
      ['registry.example.com/a+b', /may hold only/],
      ['registry.example.com/a:t!', /tag "t!" may hold only/],
    ];
    for (const [pattern, message] of cases) {
      it(`${pattern}`, () => {
        const problems = imagePatternProblems(pattern);
        expect(problems.join(' | ')).to.match(message);
      });
    }
    it('qualified patterns have no problems', () => {
      for (const p of ['docker.io/library/nginx', 'docker.io/library/**', 'docker.io/*/app', 'localhost/x', 'localhost:5000/x/**:v*', 'registry:5000/x', '[::1]:5000/x', 'registry.example.com/payments/**']) {
        expect(imagePatternProblems(p), p).to.deep.equal([]);
      }
    });
  });
});
