import { expect } from 'chai';
import { canonicalize } from '@tufjs/canonical-json';
import { canonicalBytes } from '../../webhook/src/tuf/canonical.js';
import { TufError } from '../../webhook/src/tuf/errors.js';
import { parseJson, type JsonValue } from '../../webhook/src/tuf/json.js';

const canon = (v: unknown) => canonicalBytes(v as JsonValue, 'test');
const fromText = (s: string) => canon(parseJson(Buffer.from(s, 'utf8'), 'test'));

function refused(f: () => unknown): TufError {
  try {
    f();
  } catch (e) {
    expect(e).to.be.instanceOf(TufError);
    return e as TufError;
  }
  expect.fail('expected a TufError');
}

describe('tuf canonical JSON (docker/go canonical/json rules)', () => {
  it('writes no whitespace and sorts object keys at every level', () => {
    const out = fromText('{ "b" : 1, "a" : { "z": [3, 2, 1], "y": null }, "_": true, "A": false }');
    expect(out.toString('utf8')).to.equal('{"A":false,"_":true,"a":{"y":null,"z":[3,2,1]},"b":1}');
  });

  it('sorts keys by UTF-8 bytes, not UTF-16 units: U+E000..U+FFFF sort before astral characters', () => {
    // UTF-16: U+1F600 is D83D DE00, which a default JS sort puts before U+E000 and U+FFFD.
    // UTF-8: EE 80 80 (U+E000) < EF BF BD (U+FFFD) < F0 9F 98 80 (U+1F600).
    const value = { '\u{1F600}': 3, '\uFFFD': 2, '\uE000': 1, z: 0 };
    expect(canon(value).toString('utf8')).to.equal('{"z":0,"\uE000":1,"\uFFFD":2,"\u{1F600}":3}');
    const bytes = [...canon(value)];
    const keysAt = (cp: string) => bytes.indexOf(Buffer.from(cp, 'utf8')[0]!);
    expect(keysAt('\uE000')).to.be.lessThan(keysAt('\u{1F600}'));
  });

  it('sorts BMP keys by code point (é after z, ASCII uppercase before lowercase)', () => {
    expect(canon({ é: 1, z: 2, Z: 3 }).toString('utf8')).to.equal('{"Z":3,"z":2,"é":1}');
  });

  it('escapes only " and \\ and writes every other character raw, control characters included', () => {
    const s = 'q"b\\s\n\t\u0001<>&\u2028é\u{1F600}/';
    const out = canon({ k: s });
    const expected = Buffer.concat([
      Buffer.from('{"k":"q\\"b\\\\s', 'utf8'),
      Buffer.from([0x0a, 0x09, 0x01]),
      Buffer.from('<>&', 'utf8'),
      Buffer.from([0xe2, 0x80, 0xa8]),
      Buffer.from('é\u{1F600}/"}', 'utf8'),
    ]);
    expect(out.equals(expected), out.toString('hex')).to.equal(true);
    // Escaped input means the same string and yields the same bytes.
    expect(fromText('{"k":"q\\"b\\\\s\\n\\t\\u0001\\u003c>&\\u2028\\u00e9\\ud83d\\ude00\\/"}').equals(expected)).to.equal(true);
  });

  it('writes integer-like keys in byte order too, not first as JavaScript lists them', () => {
    // V8 lists array-index keys first, in numeric order, whatever the insertion order.
    const sorted = fromText('{"a":1,"10":2,"9":3,"09":4}');
    expect(sorted.toString('utf8')).to.equal('{"09":4,"10":2,"9":3,"a":1}');
    expect(canon({ b: { '2': 'x', '1': 'y', a: 'z' } }).toString('utf8')).to.equal('{"b":{"1":"y","2":"x","a":"z"}}');
  });

  it('gives the same bytes for input already in canonical order as for the same data in any other order', () => {
    // The common case (Notary's own files) and the shuffled case must agree byte for byte,
    // including strings with quotes, backslashes, control characters and non-ASCII text.
    const nested = (i: number) => ({ hashes: { sha256: `h${i}"\\`, sha512: `é${i}\u2028` }, length: i, custom: { k: null } });
    const ordered: Record<string, unknown> = {};
    for (let i = 0; i < 50; i++) ordered[`t${String(i).padStart(3, '0')}`] = nested(i);
    const text = JSON.stringify({ expires: 'x', targets: ordered, version: 3, _type: 'Targets' });
    const shuffledTargets = Object.fromEntries(Object.entries(ordered).reverse());
    const shuffled = JSON.stringify({ version: 3, targets: shuffledTargets, _type: 'Targets', expires: 'x' });
    const a = fromText(text);
    const b = fromText(shuffled);
    expect(a.equals(b)).to.equal(true);
    expect(a.toString('utf8')).to.match(/^\{"_type":"Targets","expires":"x","targets":\{"t000":/);
    expect(a.toString('utf8')).to.include('"sha256":"h0\\"\\\\"');
  });

  it('writes metadata in the key order tuf-js and go-tuf use (out of order at every level) exactly as @tufjs/canonical-json does', () => {
    const targets: Record<string, unknown> = {};
    // Insertion order v0, v1, ... v10 is not byte order; each entry's keys are out of order too.
    for (let i = 0; i < 200; i++) targets[`reg.example/app:v${i}`] = { length: i, hashes: { sha512: `b${i}`, sha256: `a${i}` }, custom: { z: [{ d: i, c: 'q"\\' }], a: null } };
    const signed = { _type: 'targets', spec_version: '1.0.31', version: 2, expires: '2030-01-01T00:00:00Z', targets, delegations: { keys: {}, roles: [{ name: 'r', keyids: [], threshold: 1, terminating: false, paths: ['*'] }] } };
    const text = JSON.stringify(signed).replace('"delegations":', '"__proto__":{"y":1,"x":2},"delegations":');
    const parsed = parseJson(Buffer.from(text), 'targets');
    expect(canon(parsed).toString('utf8')).to.equal(canonicalize(parsed));
    expect(canon(parsed).toString('utf8')).to.match(/^\{"__proto__":\{"x":2,"y":1\},"_type":"targets","delegations":/);
    // A control character takes the careful path: still the same bytes.
    const control = parseJson(Buffer.from(text.replace('"_type":"targets"', '"_type":"targets","note":"a\\u0001b"')), 'targets');
    expect(canon(control).toString('utf8')).to.equal(canonicalize(control));
  });

  it('keeps array order and writes literals', () => {
    expect(canon([true, false, null, 'x', [], {}]).toString()).to.equal('[true,false,null,"x",[],{}]');
  });

  it('writes integers as integers, including the largest safe one and negative zero', () => {
    expect(canon([0, -5, 683, 9007199254740991, -9007199254740991]).toString()).to.equal(
      '[0,-5,683,9007199254740991,-9007199254740991]',
    );
    expect(fromText('[-0, 2.0, 6.83e2]').toString()).to.equal('[0,2,683]');
  });

  for (const [label, text] of [
    ['1.5', '{"n":1.5}'],
    ['1e400 (infinite)', '{"n":1e400}'],
    ['2^53+1 (not exactly representable)', '{"n":9007199254740993}'],
    ['a fraction deep inside', '{"a":[{"b":{"c":0.1}}]}'],
  ] as const) {
    it(`refuses a non-integer number: ${label}`, () => {
      const e = refused(() => fromText(text));
      expect(e.code).to.equal('malformed');
      expect(e.message).to.match(/integers only/);
    });
  }

  it('refuses NaN and 2^53+1 given as numbers', () => {
    expect(refused(() => canon({ n: NaN })).code).to.equal('malformed');
    expect(refused(() => canon({ n: 2 ** 53 + 2 })).code).to.equal('malformed');
  });

  it('is idempotent: canonical output parses back to the same bytes', () => {
    const first = fromText('{"z":{"\u{1F600}":"\\n","\uE000":[1,{"b":2,"a":1}]},"a":"\\\\"}');
    expect(fromText(first.toString('utf8').replace(/\n/g, '\\n')).equals(first)).to.equal(true);
  });
});

describe('tuf strict JSON parsing', () => {
  for (const [label, bytes] of [
    ['a lone 0xFF byte', Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])],
    ['an overlong "/" (C0 AF)', Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xc0, 0xaf]), Buffer.from('"}')])],
    ['an encoded surrogate (ED A0 80)', Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('"}')])],
    ['a truncated sequence', Buffer.concat([Buffer.from('{"a":"'), Buffer.from([0xe2, 0x82]), Buffer.from('"}')])],
  ] as const) {
    it(`refuses invalid UTF-8: ${label}`, () => {
      const e = refused(() => parseJson(bytes, 'targets'));
      expect(e.code).to.equal('malformed');
      expect(e.role).to.equal('targets');
      expect(e.message).to.match(/UTF-8/);
    });
  }

  it('refuses a byte-order mark and trailing garbage', () => {
    expect(refused(() => parseJson(Buffer.from('\uFEFF{}', 'utf8'), 'x')).code).to.equal('malformed');
    expect(refused(() => parseJson(Buffer.from('{} x'), 'x')).message).to.match(/not valid JSON/);
  });

  it('keeps __proto__ and constructor as plain data and pollutes nothing', () => {
    const v = parseJson(
      Buffer.from('{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"a":{"__proto__":[1]}}'),
      'x',
    ) as Record<string, JsonValue>;
    expect(Object.getPrototypeOf(v)).to.equal(null);
    expect(Object.keys(v)).to.deep.equal(['__proto__', 'constructor', 'a']);
    expect((v['__proto__'] as Record<string, JsonValue>)['polluted']).to.equal('yes');
    expect(({} as Record<string, unknown>)['polluted']).to.equal(undefined);
    expect(canon(v).toString()).to.equal('{"__proto__":{"polluted":"yes"},"a":{"__proto__":[1]},"constructor":{"prototype":{"polluted":"yes"}}}');
  });

  it('accepts ordinary nesting and refuses very deep nesting without crashing', () => {
    const ok = '['.repeat(30) + ']'.repeat(30);
    expect(() => parseJson(Buffer.from(ok), 'x')).not.to.throw();
    for (const depth of [200, 100_000]) {
      const deep = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
      const e = refused(() => parseJson(Buffer.from(deep), 'snapshot'));
      expect(e.code).to.equal('malformed');
      expect(e.message).to.match(/deeper|JSON/);
    }
  });
});
