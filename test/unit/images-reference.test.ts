import { expect } from 'chai';
import {
  digestProblem,
  familiarName,
  formatReference,
  parseReference,
  pinnedReference,
  ImageReferenceError,
  withoutDefaultPort,
  type ImageReference,
} from '../../webhook/src/images/reference.js';

const D = `sha256:${'0123456789abcdef'.repeat(4)}`;
const D2 = `sha256:${'fedcba9876543210'.repeat(4)}`;
const HEX64 = 'a'.repeat(32) + '0123456789abcdef'.repeat(2);

function rejected(input: string): ImageReferenceError {
  try {
    parseReference(input);
  } catch (e) {
    expect(e, JSON.stringify(input)).to.be.instanceOf(ImageReferenceError);
    return e as ImageReferenceError;
  }
  expect.fail(`expected ${JSON.stringify(input)} to be rejected`);
}

interface Valid {
  input: string;
  domain: string;
  path: string;
  tag?: string;
  digest?: string;
  familiar: string;
}

const valid: Valid[] = [
  // Docker Hub defaults
  { input: 'nginx', domain: 'docker.io', path: 'library/nginx', tag: 'latest', familiar: 'nginx' },
  { input: 'nginx:1.25', domain: 'docker.io', path: 'library/nginx', tag: '1.25', familiar: 'nginx' },
  { input: 'library/nginx', domain: 'docker.io', path: 'library/nginx', tag: 'latest', familiar: 'nginx' },
  { input: 'docker.io/nginx', domain: 'docker.io', path: 'library/nginx', tag: 'latest', familiar: 'nginx' },
  { input: 'index.docker.io/nginx:1', domain: 'docker.io', path: 'library/nginx', tag: '1', familiar: 'nginx' },
  { input: 'index.docker.io/library/nginx', domain: 'docker.io', path: 'library/nginx', tag: 'latest', familiar: 'nginx' },
  { input: 'user/app', domain: 'docker.io', path: 'user/app', tag: 'latest', familiar: 'user/app' },
  { input: 'docker.io/user/app:v2', domain: 'docker.io', path: 'user/app', tag: 'v2', familiar: 'user/app' },
  { input: 'user/app/sub', domain: 'docker.io', path: 'user/app/sub', tag: 'latest', familiar: 'user/app/sub' },
  { input: 'docker.io/library/a/b', domain: 'docker.io', path: 'library/a/b', tag: 'latest', familiar: 'library/a/b' },
  // A first component without '.', ':' or uppercase that is not localhost is a Hub namespace.
  { input: 'foo_bar/baz', domain: 'docker.io', path: 'foo_bar/baz', tag: 'latest', familiar: 'foo_bar/baz' },
  { input: 'localhostx/app', domain: 'docker.io', path: 'localhostx/app', tag: 'latest', familiar: 'localhostx/app' },
  { input: 'docker.io/foo.com/x', domain: 'docker.io', path: 'foo.com/x', tag: 'latest', familiar: 'docker.io/foo.com/x' },
  { input: 'docker.io/localhost/app', domain: 'docker.io', path: 'localhost/app', tag: 'latest', familiar: 'docker.io/localhost/app' },
  // Other registries
  { input: 'localhost/app', domain: 'localhost', path: 'app', tag: 'latest', familiar: 'localhost/app' },
  { input: 'localhost:5000/demo/app', domain: 'localhost:5000', path: 'demo/app', tag: 'latest', familiar: 'localhost:5000/demo/app' },
  { input: 'registry.example.com/x', domain: 'registry.example.com', path: 'x', tag: 'latest', familiar: 'registry.example.com/x' },
  { input: 'registry.example.com:443/x:1', domain: 'registry.example.com:443', path: 'x', tag: '1', familiar: 'registry.example.com:443/x' },
  { input: 'a.b/c', domain: 'a.b', path: 'c', tag: 'latest', familiar: 'a.b/c' },
  { input: 'my-registry:5000/x', domain: 'my-registry:5000', path: 'x', tag: 'latest', familiar: 'my-registry:5000/x' },
  { input: 'a:1/b', domain: 'a:1', path: 'b', tag: 'latest', familiar: 'a:1/b' },
  { input: '127.0.0.1:5000/app', domain: '127.0.0.1:5000', path: 'app', tag: 'latest', familiar: '127.0.0.1:5000/app' },
  { input: 'localhost:65535/app', domain: 'localhost:65535', path: 'app', tag: 'latest', familiar: 'localhost:65535/app' },
  { input: '[::1]:5000/app', domain: '[::1]:5000', path: 'app', tag: 'latest', familiar: '[::1]:5000/app' },
  { input: '[2001:db8::1]/app', domain: '[2001:db8::1]', path: 'app', tag: 'latest', familiar: '[2001:db8::1]/app' },
  { input: 'docker.io:443/nginx', domain: 'docker.io:443', path: 'nginx', tag: 'latest', familiar: 'docker.io:443/nginx' },
  { input: 'registry-1.docker.io/library/nginx', domain: 'docker.io', path: 'library/nginx', tag: 'latest', familiar: 'nginx' },
  { input: 'xn--bcher-kva.example/app', domain: 'xn--bcher-kva.example', path: 'app', tag: 'latest', familiar: 'xn--bcher-kva.example/app' },
  // Path separators
  { input: 'a.b_c__d-e---f', domain: 'docker.io', path: 'library/a.b_c__d-e---f', tag: 'latest', familiar: 'a.b_c__d-e---f' },
  { input: 'x/0/9z', domain: 'docker.io', path: 'x/0/9z', tag: 'latest', familiar: 'x/0/9z' },
  // Tags: uppercase, '_' first, 128 characters
  { input: 'nginx:Latest_1.0-rc', domain: 'docker.io', path: 'library/nginx', tag: 'Latest_1.0-rc', familiar: 'nginx' },
  { input: 'nginx:_x', domain: 'docker.io', path: 'library/nginx', tag: '_x', familiar: 'nginx' },
  { input: `nginx:${'t'.repeat(128)}`, domain: 'docker.io', path: 'library/nginx', tag: 't'.repeat(128), familiar: 'nginx' },
  // Digests: digest-only has no tag; tag + digest keeps both
  { input: `nginx@${D}`, domain: 'docker.io', path: 'library/nginx', digest: D, familiar: 'nginx' },
  { input: `nginx:latest@${D}`, domain: 'docker.io', path: 'library/nginx', tag: 'latest', digest: D, familiar: 'nginx' },
  { input: `localhost:5000/app:1.0@${D}`, domain: 'localhost:5000', path: 'app', tag: '1.0', digest: D, familiar: 'localhost:5000/app' },
  // distribution reads these as Hub names, and so do we
  { input: 'localhost:5000', domain: 'docker.io', path: 'library/localhost', tag: '5000', familiar: 'localhost' },
  { input: 'sha256:abc', domain: 'docker.io', path: 'library/sha256', tag: 'abc', familiar: 'sha256' },
  { input: `${HEX64}:v1`, domain: 'docker.io', path: `library/${HEX64}`, tag: 'v1', familiar: `library/${HEX64}` },
  { input: HEX64.slice(1), domain: 'docker.io', path: `library/${HEX64.slice(1)}`, tag: 'latest', familiar: HEX64.slice(1) },
  // Longest name: 'docker.io/library/' is 18 characters, plus 237
  { input: 'n'.repeat(237), domain: 'docker.io', path: `library/${'n'.repeat(237)}`, tag: 'latest', familiar: 'n'.repeat(237) },
];

const invalid: Array<[string, string]> = [
  ['', 'empty reference'],
  // whitespace and control characters
  [' nginx', 'whitespace at position 0'],
  ['nginx ', 'whitespace at position 5'],
  ['ngi nx', 'whitespace'],
  ['nginx\t', 'whitespace'],
  ['nginx\n:evil', 'whitespace at position 5'],
  ['nginx\r', 'whitespace'],
  ['nginx\u0000', 'control character U+0000'],
  ['nginx\u001b[31m', 'control character U+001B'],
  ['nginx\u007f', 'control character U+007F'],
  // non-ASCII lookalikes
  ['ngin\u0445', 'non-ASCII character U+0445 at position 4'], // Cyrillic ha
  ['\uff4eginx', 'non-ASCII character U+FF4E'], // fullwidth n
  ['nginx\uff1alatest', 'non-ASCII character U+FF1A'], // fullwidth colon
  ['docker.io/library/nginx\u200b', 'non-ASCII character U+200B'], // zero-width space
  ['nginx\u00a0', 'non-ASCII character U+00A0'], // no-break space
  ['r\u0435gistry.example.com/x', 'non-ASCII character U+0435'],
  ['nginx\u{1d427}', 'non-ASCII character U+1D427'],
  // empty parts
  ['nginx:', "empty tag after ':'"],
  ['nginx@', "empty digest after '@'"],
  ['nginx:@' + D, "empty tag after ':'"],
  [':latest', 'empty repository name'],
  ['@' + D, 'empty repository name'],
  ['a//b', 'empty path component'],
  ['nginx/', 'empty path component'],
  ['/nginx', 'empty path component'],
  ['user/app/', 'empty path component'],
  ['localhost:5000/a//b', 'empty path component'],
  ['localhost:5000/', 'empty repository name'],
  ['localhost/', 'empty repository name'],
  ['docker.io/', 'empty repository name'],
  ['index.docker.io/:1', 'empty repository name'],
  // Docker Hub adds library/ only for the docker.io spelling: no guessing for its registry host
  ['registry-1.docker.io/nginx', 'Docker Hub, which names official images library/nginx: write "docker.io/library/nginx"'],
  ['registry.hub.docker.com/nginx', 'registry.hub.docker.com is Docker Hub, which names official images library/nginx: write "docker.io/library/nginx"'],
  ['registry-1.docker.io/nginx:1.25@' + D, `write "docker.io/library/nginx:1.25@${D}"`],
  // path grammar
  ['..', 'invalid path component ".."'],
  ['a/../b', 'invalid path component ".."'],
  ['a/./b', 'invalid path component "."'],
  ['a..b', 'invalid path component "a..b"'],
  ['a___b', 'invalid path component'],
  ['a-_b', 'invalid path component'],
  ['a._b', 'invalid path component'],
  ['_a', 'invalid path component'],
  ['a_', 'invalid path component'],
  ['-a', 'invalid path component'],
  ['a-', 'invalid path component'],
  ['.a', 'invalid path component'],
  ['user/a+b', 'invalid path component "a+b"'],
  ['user/a%2fb', 'invalid path component'],
  ['user/a\\b', 'invalid path component'],
  // uppercase: in the path it is a bad name; as a first component it would be a registry host
  ['Nginx', 'repository name "Nginx" must be lowercase'],
  ['nginX:latest', 'must be lowercase'],
  ['library/Nginx', 'must be lowercase'],
  ['localhost:5000/App', 'repository name "App" must be lowercase'],
  [`Nginx@${D}`, 'must be lowercase'],
  ['User/app', 'registry host "User" must be lowercase'],
  ['Docker.io/nginx', 'registry host "Docker.io" must be lowercase'],
  ['DOCKER.IO/library/nginx', 'registry host "DOCKER.IO" must be lowercase'],
  ['LOCALHOST/app', 'must be lowercase'],
  ['Registry.Example.com:5000/x', 'registry host "Registry.Example.com" must be lowercase'],
  ['[::ABCD]/x', 'must be lowercase'],
  // image IDs
  [HEX64, 'image ID'],
  [`sha256:${HEX64}`, 'image ID'],
  [`sha512:${HEX64}${HEX64}`, 'image ID'],
  // digests
  [`nginx@sha256:${HEX64.slice(1)}`, 'sha256 digest must be 64 lowercase hex characters'],
  [`nginx@sha256:${HEX64}0`, '65 characters'],
  [`nginx@sha256:${HEX64.toUpperCase()}`, 'sha256 digest must be 64 lowercase hex characters'],
  [`nginx@sha256:${HEX64.slice(1)}g`, 'sha256 digest must be 64 lowercase hex characters'],
  [`nginx@sha512:${HEX64}${HEX64}`, 'unsupported digest algorithm "sha512"'],
  [`nginx@SHA256:${HEX64}`, 'unsupported digest algorithm "SHA256"'],
  [`nginx@md5:${HEX64.slice(32)}`, 'unsupported digest algorithm "md5"'],
  ['nginx@sha256', 'must be algorithm:hex'],
  [`nginx@:${HEX64}`, 'unsupported digest algorithm ""'],
  [`nginx@@${D}`, "more than one '@'"],
  [`nginx@${D}@${D2}`, "more than one '@'"],
  [`nginx@${D}:tag`, 'sha256 digest must be 64 lowercase hex characters'],
  // tags
  [`nginx:${'t'.repeat(129)}`, 'tag longer than 128 characters'],
  ['nginx:.x', 'invalid tag ".x"'],
  ['nginx:-x', 'invalid tag "-x"'],
  ['nginx:a:b', 'invalid tag "a:b"'],
  ['nginx:a+b', 'invalid tag'],
  ['nginx:1.0/foo', 'invalid registry port "1.0"'],
  // registry hosts and ports
  ['localhost:0/x', 'invalid registry port "0"'],
  ['localhost:05000/x', 'invalid registry port "05000"'],
  ['localhost:65536/x', 'invalid registry port "65536"'],
  ['localhost:99999999999999999999/x', 'invalid registry port'],
  ['localhost:/x', 'invalid registry port ""'],
  ['localhost:abc/x', 'invalid registry port "abc"'],
  ['localhost:5000:6000/x', 'invalid registry port "5000:6000"'],
  ['http://nginx', 'invalid registry port ""'],
  ['-bad.com/x', 'invalid registry host "-bad.com"'],
  ['bad-.com/x', 'invalid registry host "bad-.com"'],
  ['a..b.com/x', 'invalid registry host'],
  ['example.com./x', 'invalid registry host "example.com."'],
  ['.example.com/x', 'invalid registry host'],
  ['ex_ample.com/x', 'invalid registry host'],
  [':5000/x', 'empty registry host'],
  ['[::1/x', 'invalid registry host'],
  ['[::1]x/app', 'invalid registry host'],
  ['[::1]:/app', 'invalid registry port ""'],
  ['[zz::1]/x', 'invalid registry host "[zz::1]"'],
  ['[]/x', 'invalid path component "[]"'],
  // length
  ['n'.repeat(238), 'repository name longer than 255 characters'],
  [`registry.example.com/${'a/'.repeat(117)}b`, 'repository name longer than 255 characters'],
  ['x'.repeat(100_000), 'longer than 512 characters'],
];

describe('image references: parseReference', () => {
  describe('accepts and normalizes', () => {
    for (const c of valid) {
      it(`${JSON.stringify(c.input.length > 60 ? c.input.slice(0, 60) + '...' : c.input)}`, () => {
        const r = parseReference(c.input);
        const want: ImageReference = { original: c.input, domain: c.domain, path: c.path, name: `${c.domain}/${c.path}` };
        if (c.tag !== undefined) want.tag = c.tag;
        if (c.digest !== undefined) want.digest = c.digest;
        expect(r).to.deep.equal(want);
        expect(familiarName(r)).to.equal(c.familiar);
      });
    }
  });

  describe('rejects with a reason', () => {
    for (const [input, reason] of invalid) {
      it(`${JSON.stringify(input.length > 60 ? input.slice(0, 60) + '...' : input)}`, () => {
        const e = rejected(input);
        expect(e.input).to.equal(input);
        expect(e.reason).to.include(reason);
      });
    }
  });

  it('fills in latest only when neither tag nor digest is given', () => {
    expect(parseReference('nginx').tag).to.equal('latest');
    expect(parseReference(`nginx@${D}`)).to.not.have.property('tag');
    expect(parseReference('nginx:1')).to.not.have.property('digest');
  });

  it('accepts the longest possible reference: 255-character name, 128-character tag, digest', () => {
    const input = `index.docker.io/library/${'n'.repeat(237)}:${'t'.repeat(128)}@${D}`;
    expect(input.length).to.equal(462);
    const r = parseReference(input);
    expect(r.name).to.have.length(255);
    expect(r.tag).to.have.length(128);
    expect(r.digest).to.equal(D);
  });

  it('returns a frozen object', () => {
    const r = parseReference('nginx');
    expect(Object.isFrozen(r)).to.equal(true);
  });

  it('rejects a non-string from untyped callers instead of crashing', () => {
    for (const v of [undefined, null, 42, {}]) {
      const e = rejected(v as unknown as string);
      expect(e.reason).to.equal('image reference must be a string');
    }
  });
});

describe('image references: errors', () => {
  it('formats the message as invalid image reference "<input>": <reason>', () => {
    const e = rejected('nginx:');
    expect(e).to.be.instanceOf(Error);
    expect(e.name).to.equal('ReferenceError');
    expect(e.message).to.equal(`invalid image reference "nginx:": empty tag after ':'`);
  });

  it('escapes control and non-ASCII characters in the message but keeps the raw input', () => {
    const input = 'nginx\n"x"\u202e';
    const e = rejected(input);
    expect(e.input).to.equal(input);
    expect(e.message).to.equal('invalid image reference "nginx\\u000a\\"x\\"\\u202e": contains whitespace at position 5');
    expect(e.message).to.not.match(/[\u0000-\u001f\u007f-\uffff]/);
  });

  it('keeps messages short for huge input', () => {
    const e = rejected('x'.repeat(100_000));
    expect(e.message.length).to.be.below(400);
  });
});

describe('image references: normalization tricks', () => {
  const sameRepository: string[][] = [
    [
      'nginx',
      'nginx:latest',
      'library/nginx',
      'docker.io/nginx',
      'docker.io/library/nginx',
      'docker.io/library/nginx:latest',
      'index.docker.io/nginx',
      'index.docker.io/library/nginx:latest',
    ],
    // containerd sends every docker.io pull to registry-1.docker.io: one repository, one GUN.
    ['docker.io/library/nginx:1', 'registry-1.docker.io/library/nginx:1', 'registry.hub.docker.com/library/nginx:1', 'index.docker.io/library/nginx:1', 'nginx:1'],
    ['user/app', 'docker.io/user/app', 'index.docker.io/user/app:latest', 'registry-1.docker.io/user/app'],
    ['localhost:5000/app', 'localhost:5000/app:latest'],
  ];
  for (const group of sameRepository) {
    it(`${group[0]} has one GUN and one normalized form`, () => {
      const forms = new Set(group.map((s) => formatReference(parseReference(s))));
      const names = new Set(group.map((s) => parseReference(s).name));
      expect([...forms]).to.have.length(1);
      expect([...names]).to.have.length(1);
    });
  }

  it('names the docker.io default exactly', () => {
    expect(formatReference(parseReference('index.docker.io/nginx'))).to.equal('docker.io/library/nginx:latest');
    expect(parseReference('nginx').name).to.equal('docker.io/library/nginx');
  });

  const differentRepositories: Array<[string, string]> = [
    ['localhost/app', 'localhost:5000/app'],
    ['registry.example.com/x', 'registry.example.com:443/x'],
    ['docker.io/library/nginx', 'docker.io:443/nginx'],
    ['user/app', 'library/user/app'],
    ['foo.com/x', 'docker.io/foo.com/x'],
    ['localhost/app', 'docker.io/localhost/app'],
    ['a.b/c', 'a/b/c'],
    ['nginx', 'nginx/nginx'],
  ];
  for (const [a, b] of differentRepositories) {
    it(`${a} and ${b} are different repositories`, () => {
      expect(parseReference(a).name).to.not.equal(parseReference(b).name);
    });
  }

  it('a normalized reference parses back to itself, so no two repositories share a form', () => {
    for (const c of valid) {
      const r = parseReference(c.input);
      const again = parseReference(formatReference(r));
      expect({ ...again, original: r.original }, c.input).to.deep.equal(r);
      expect(formatReference(again)).to.equal(formatReference(r));
    }
  });

  it('the familiar name parses back to the same repository', () => {
    for (const c of valid) {
      const r = parseReference(c.input);
      expect(parseReference(familiarName(r)).name, c.input).to.equal(r.name);
    }
  });

  it('tag, digest and name stay separate: no spelling moves characters between them', () => {
    const r = parseReference(`localhost:5000/app:1.0@${D}`);
    expect([r.domain, r.path, r.tag, r.digest]).to.deep.equal(['localhost:5000', 'app', '1.0', D]);
  });
});

describe('image references: formatReference and pinnedReference', () => {
  it('formats fully qualified name[:tag][@digest]', () => {
    expect(formatReference(parseReference('nginx'))).to.equal('docker.io/library/nginx:latest');
    expect(formatReference(parseReference(`nginx@${D}`))).to.equal(`docker.io/library/nginx@${D}`);
    expect(formatReference(parseReference(`nginx:1@${D}`))).to.equal(`docker.io/library/nginx:1@${D}`);
    expect(formatReference(parseReference('localhost:5000/demo/app:v1'))).to.equal('localhost:5000/demo/app:v1');
  });

  it('pins name:tag to name:tag@digest', () => {
    expect(pinnedReference(parseReference('nginx:1.25'), D)).to.equal(`docker.io/library/nginx:1.25@${D}`);
    expect(pinnedReference(parseReference('nginx'), D)).to.equal(`docker.io/library/nginx:latest@${D}`);
    expect(pinnedReference(parseReference('localhost:5000/app'), D)).to.equal(`localhost:5000/app:latest@${D}`);
  });

  it('pins a digest-only reference without inventing a tag', () => {
    expect(pinnedReference(parseReference(`nginx@${D}`), D)).to.equal(`docker.io/library/nginx@${D}`);
  });

  it('keeps tag and digest when the reference already names the same digest', () => {
    expect(pinnedReference(parseReference(`nginx:1@${D}`), D)).to.equal(`docker.io/library/nginx:1@${D}`);
  });

  it('refuses to swap a digest the reference already names', () => {
    expect(() => pinnedReference(parseReference(`nginx:1@${D}`), D2))
      .to.throw(ImageReferenceError, 'already names a different digest');
  });

  it('refuses to pin to anything but a sha256 digest of 64 lowercase hex', () => {
    const ref = parseReference('nginx');
    for (const bad of ['', HEX64, `sha256:${HEX64.toUpperCase()}`, `sha256:${HEX64.slice(1)}`, `sha512:${HEX64}${HEX64}`, `${D}\n`]) {
      expect(() => pinnedReference(ref, bad), JSON.stringify(bad)).to.throw(ImageReferenceError, 'cannot pin');
    }
  });

  it('the pinned reference parses back to the same repository, tag and digest', () => {
    const ref = parseReference('registry.example.com:443/team/app:2.0');
    const back = parseReference(pinnedReference(ref, D));
    expect([back.name, back.tag, back.digest]).to.deep.equal([ref.name, '2.0', D]);
  });
});

describe('image references: withoutDefaultPort', () => {
  const aliases: Array<[string, string]> = [
    ['registry.test:443/strict/app:x', 'registry.test/strict/app:x'],
    ['registry.test:443/app', 'registry.test/app:latest'],
    ['docker.io:443/nginx:1', 'docker.io/library/nginx:1'],
    ['index.docker.io:443/library/nginx', 'docker.io/library/nginx:latest'],
    ['registry-1.docker.io:443/library/nginx:1', 'docker.io/library/nginx:1'],
    [`[::1]:443/x@${D}`, `[::1]/x@${D}`],
  ];
  for (const [input, canonical] of aliases) {
    it(`${input} is ${canonical} without its default HTTPS port`, () => {
      expect(formatReference(withoutDefaultPort(parseReference(input))!)).to.equal(canonical);
    });
  }
  it('names nothing for a registry without :443, and throws for an alias with no valid spelling', () => {
    for (const s of ['registry.test/x', 'registry.test:4430/x', 'registry.test:8443/x', 'localhost:5000/x', 'nginx']) {
      expect(withoutDefaultPort(parseReference(s)), s).to.equal(undefined);
    }
    expect(() => withoutDefaultPort(parseReference('registry-1.docker.io:443/nginx'))).to.throw(ImageReferenceError, 'write "docker.io/library/nginx:latest"');
  });
});

describe('image references: digestProblem', () => {
  it('accepts sha256 with 64 lowercase hex and explains everything else', () => {
    expect(digestProblem(D)).to.equal(undefined);
    expect(digestProblem(`sha256:${HEX64.slice(2)}`)).to.include('(62 characters)');
    expect(digestProblem(`sha384:${'a'.repeat(96)}`)).to.include('unsupported digest algorithm "sha384"');
    expect(digestProblem('nothex')).to.include('must be algorithm:hex');
  });
});
