// trustgate's schema validation (Ajv underneath): the keywords of the structural OpenAPI / draft-07
// subset its schemas use, every problem reported with its path and a message a person can act
// on, defaults applied like an API server, Helm-style schemas.
import { expect } from 'chai';
import { applyDefaults, validateSchema, type SchemaProblem } from '../../webhook/src/policy/schema.js';

const paths = (ps: SchemaProblem[]) => ps.map((p) => p.path);
const one = (ps: SchemaProblem[]): SchemaProblem => {
  expect(ps, JSON.stringify(ps)).to.have.length(1);
  return ps[0]!;
};

describe('policy schema validator', () => {
  describe('types', () => {
    const cases: [string, unknown, unknown, RegExp | null][] = [
      ['string', 'x', 1, /must be a string, not the integer 1/],
      ['integer', 3, 3.5, /must be an integer, not the number 3.5/],
      ['number', 3.5, '3.5', /must be a number, not the string "3.5"/],
      ['boolean', false, 'false', /must be a boolean/],
      ['array', [], {}, /must be a list, not an object/],
      ['object', {}, [], /must be an object, not a list/],
      ['null', null, 0, /must be null/],
    ];
    for (const [type, good, bad, message] of cases) {
      it(type, () => {
        expect(validateSchema({ type }, good)).to.deep.equal([]);
        expect(one(validateSchema({ type }, bad)).message).to.match(message!);
      });
    }
    it('a list of types (draft-07) and nullable (OpenAPI)', () => {
      expect(validateSchema({ type: ['string', 'null'] }, null)).to.deep.equal([]);
      expect(one(validateSchema({ type: ['string', 'null'] }, 1)).message).to.match(/a string or null/);
      expect(validateSchema({ type: 'string', nullable: true }, null)).to.deep.equal([]);
      expect(validateSchema({ type: 'string' }, null)).to.have.length(1);
    });
    it('NaN and Infinity are not numbers', () => {
      expect(validateSchema({ type: 'number' }, Number.NaN)).to.have.length(1);
      expect(validateSchema({ type: 'number' }, Number.POSITIVE_INFINITY)).to.have.length(1);
    });
    it('x-kubernetes-int-or-string', () => {
      const s = { 'x-kubernetes-int-or-string': true };
      expect(validateSchema(s, 3)).to.deep.equal([]);
      expect(validateSchema(s, '50%')).to.deep.equal([]);
      expect(one(validateSchema(s, 1.5)).message).to.match(/integer or a string/);
    });
  });

  describe('objects', () => {
    const schema = {
      type: 'object',
      required: ['a', 'b'],
      properties: { a: { type: 'string' }, b: { type: 'object', properties: { threshold: { type: 'integer' } } } },
    };
    it('reports every missing required field and every wrong value, each with its path', () => {
      expect(paths(validateSchema(schema, {}))).to.deep.equal(['a', 'b']);
      const ps = validateSchema(schema, { a: 1, b: { threshold: 'x' } });
      expect(paths(ps)).to.deep.equal(['a', 'b.threshold']);
    });
    it('allows unknown fields by default (JSON Schema) and rejects them when asked (policy files), with a suggestion', () => {
      const value = { a: 'x', b: { treshold: 1 } };
      expect(validateSchema(schema, value)).to.deep.equal([]);
      const p = one(validateSchema(schema, value, { rejectUnknownFields: true }));
      expect(p.path).to.equal('b.treshold');
      expect(p.message).to.equal('unknown field "treshold" (did you mean "threshold"?)');
      expect(one(validateSchema(schema, { a: 'x', b: {}, zzz: 1 }, { rejectUnknownFields: true })).message).to.equal('unknown field "zzz" (known fields: a, b)');
    });
    it('additionalProperties false, schema, and x-kubernetes-preserve-unknown-fields', () => {
      expect(one(validateSchema({ type: 'object', properties: {}, additionalProperties: false }, { x: 1 })).path).to.equal('x');
      const map = { type: 'object', additionalProperties: { type: 'string' } };
      expect(validateSchema(map, { a: 'x' })).to.deep.equal([]);
      expect(one(validateSchema(map, { 'a.b/c': 1 })).path).to.equal('["a.b/c"]');
      const preserve = { type: 'object', properties: { a: { type: 'string' } }, 'x-kubernetes-preserve-unknown-fields': true };
      expect(validateSchema(preserve, { a: 'x', other: 1 }, { rejectUnknownFields: true })).to.deep.equal([]);
    });
    it('an object without declared properties keeps whatever it holds (like metadata)', () => {
      expect(validateSchema({ type: 'object' }, { anything: 1 }, { rejectUnknownFields: true })).to.deep.equal([]);
    });
    it('minProperties / maxProperties', () => {
      expect(validateSchema({ type: 'object', minProperties: 1 }, {})).to.have.length(1);
      expect(validateSchema({ type: 'object', maxProperties: 1 }, { a: 1, b: 2 })).to.have.length(1);
    });
    it('a field named __proto__ is an ordinary (unknown) field', () => {
      const value = JSON.parse('{"a":"x","b":{},"__proto__":{"polluted":true}}') as unknown;
      expect(one(validateSchema(schema, value, { rejectUnknownFields: true })).path).to.equal('__proto__');
      expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    });
  });

  describe('strings, numbers, lists', () => {
    it('enum, const', () => {
      expect(one(validateSchema({ enum: ['enforce', 'warn'] }, 'block')).message).to.equal('must be one of "enforce", "warn", not "block"');
      expect(validateSchema({ const: 3 }, 3)).to.deep.equal([]);
      expect(validateSchema({ const: 3 }, 4)).to.have.length(1);
    });
    it('pattern (unanchored, as in JSON Schema and Kubernetes), minLength/maxLength in characters', () => {
      expect(validateSchema({ type: 'string', pattern: 'BEGIN' }, 'xx BEGIN xx')).to.deep.equal([]);
      expect(one(validateSchema({ type: 'string', pattern: '^a$' }, 'ab')).message).to.match(/does not match the pattern \^a\$/);
      expect(one(validateSchema({ type: 'string', minLength: 1 }, '')).message).to.equal('must not be empty');
      expect(validateSchema({ type: 'string', maxLength: 2 }, '😀😀')).to.deep.equal([]);
      expect(one(validateSchema({ type: 'string', maxLength: 2 }, 'abc')).message).to.match(/at most 2 characters long \(is 3\)/);
    });
    it('an invalid pattern in the schema is reported, not thrown', () => {
      expect(one(validateSchema({ type: 'string', pattern: '(' }, 'x')).message).to.match(/schema error: invalid pattern/);
    });
    it('minimum/maximum, inclusive, and exclusive in both the draft-07 and OpenAPI 3.0 forms, multipleOf', () => {
      expect(validateSchema({ type: 'integer', minimum: 1 }, 1)).to.deep.equal([]);
      expect(one(validateSchema({ type: 'integer', minimum: 1 }, 0)).message).to.equal('must be at least 1 (is 0)');
      expect(validateSchema({ type: 'integer', maximum: 3 }, 4)).to.have.length(1);
      expect(validateSchema({ type: 'number', minimum: 1, exclusiveMinimum: true }, 1)).to.have.length(1);
      expect(validateSchema({ type: 'number', exclusiveMinimum: 1 }, 1)).to.have.length(1);
      expect(validateSchema({ type: 'number', exclusiveMaximum: 5 }, 4.9)).to.deep.equal([]);
      expect(validateSchema({ type: 'number', maximum: 5, exclusiveMaximum: true }, 5)).to.have.length(1);
      expect(validateSchema({ type: 'number', multipleOf: 0.5 }, 1.5)).to.deep.equal([]);
      expect(validateSchema({ type: 'number', multipleOf: 0.5 }, 1.2)).to.have.length(1);
    });
    it('items, minItems/maxItems, uniqueItems and x-kubernetes-list-type set/map', () => {
      const list = { type: 'array', minItems: 1, maxItems: 2, items: { type: 'string' } };
      expect(one(validateSchema(list, [])).message).to.equal('must not be empty');
      expect(paths(validateSchema(list, ['a', 1, 'c']))).to.deep.equal(['(root)', '[1]']);
      expect(one(validateSchema({ type: 'array', 'x-kubernetes-list-type': 'set' }, ['a', 'b', 'a'])).path).to.equal('[2]');
      expect(one(validateSchema({ type: 'array', uniqueItems: true }, [{ a: 1 }, { a: 1 }])).message).to.match(/duplicate of \[0\]/);
      const conditions = { type: 'array', 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] };
      expect(validateSchema(conditions, [{ type: 'Ready' }, { type: 'Synced' }])).to.deep.equal([]);
      expect(one(validateSchema(conditions, [{ type: 'Ready', status: 'True' }, { type: 'Ready', status: 'False' }])).path).to.equal('[1]');
    });
    it('tuple items (draft-07)', () => {
      const tuple = { type: 'array', items: [{ type: 'string' }, { type: 'integer' }], additionalItems: false };
      expect(validateSchema(tuple, ['a', 1])).to.deep.equal([]);
      expect(paths(validateSchema(tuple, [1, 'a', true]))).to.deep.equal(['[0]', '[1]', '[2]']);
    });
    it('formats', () => {
      const ok: [string, string][] = [
        ['date-time', '2024-05-01T12:00:00Z'],
        ['date-time', '2024-02-29T23:59:59.5+01:00'],
        ['date', '2024-02-29'],
        ['uri', 'https://example.com/x'],
        ['hostname', 'notary.example.com'],
        ['ipv4', '127.0.0.1'],
        ['email', 'a@example.com'],
        ['byte', 'aGk='],
      ];
      const bad: [string, string][] = [
        ['date-time', '2024-05-01 12:00:00'],
        ['date-time', '2023-02-29T00:00:00Z'],
        ['date', '2024-13-01'],
        ['uri', 'not a uri'],
        ['hostname', '-bad-.example.com'],
        ['ipv4', '256.0.0.1'],
        ['email', 'nobody'],
        ['byte', 'a'],
      ];
      for (const [format, v] of ok) expect(validateSchema({ type: 'string', format }, v), `${format} ${v}`).to.deep.equal([]);
      for (const [format, v] of bad) expect(validateSchema({ type: 'string', format }, v), `${format} ${v}`).to.have.length(1);
      expect(validateSchema({ type: 'integer', format: 'int32' }, 2 ** 31)).to.have.length(1);
      expect(validateSchema({ type: 'string', format: 'unheard-of' }, 'x')).to.deep.equal([]);
    });
  });

  describe('combinators and $ref (Helm values.schema.json)', () => {
    const helm = {
      $schema: 'http://json-schema.org/draft-07/schema#',
      type: 'object',
      definitions: { port: { type: 'integer', minimum: 1, maximum: 65535 } },
      properties: {
        port: { $ref: '#/definitions/port' },
        replicas: { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: '^[0-9]+$' }] },
        tls: { oneOf: [{ required: ['secretName'] }, { required: ['selfSigned'] }] },
        image: { allOf: [{ type: 'string' }, { not: { pattern: ':latest$' } }] },
      },
    };
    it('accepts a good document', () => {
      expect(validateSchema(helm, { port: 8443, replicas: '2', tls: { secretName: 's' }, image: 'x:1' })).to.deep.equal([]);
    });
    it('reports each failing keyword at its path', () => {
      const ps = validateSchema(helm, { port: 70000, replicas: 0, tls: { secretName: 's', selfSigned: true }, image: 'x:latest' });
      expect(paths(ps)).to.deep.equal(['port', 'replicas', 'tls', 'image']);
      expect(ps[0]!.message).to.match(/at most 65535/);
      expect(ps[1]!.message).to.match(/at least one of 2 alternatives/);
      expect(ps[2]!.message).to.match(/exactly one of 2 alternatives, matches 2/);
      expect(ps[3]!.message).to.match(/must not match/);
    });
    it('an unresolvable $ref is a reported schema error', () => {
      expect(one(validateSchema({ $ref: '#/definitions/nope' }, 1)).message).to.match(/cannot resolve \$ref/);
    });
    it('a self-referencing schema does not recurse forever', () => {
      const loop = { $ref: '#/definitions/a', definitions: { a: { $ref: '#/definitions/a' } } };
      expect(validateSchema(loop, 1)).to.have.length(1);
    });
  });

  describe('applyDefaults', () => {
    const schema = {
      type: 'object',
      properties: {
        mode: { type: 'string', default: 'enforce' },
        root: { type: 'object', properties: { threshold: { type: 'integer', default: 1 } } },
        freshness: { type: 'object', properties: { maxMetadataAge: { type: 'string', default: '24h' } } },
        list: { type: 'array', items: { type: 'object', properties: { x: { default: { deep: [1] } } } } },
      },
    };
    it('fills absent fields inside existing objects only, and list items', () => {
      const out = applyDefaults(schema, { root: {}, list: [{}, { x: 2 }] });
      expect(out).to.deep.equal({ mode: 'enforce', root: { threshold: 1 }, list: [{ x: { deep: [1] } }, { x: 2 }] });
    });
    it('keeps given values, never modifies its input, and never shares the default object', () => {
      const input = { mode: 'warn', root: { threshold: 3 }, list: [{}, {}] };
      const snapshot = JSON.stringify(input);
      const out = applyDefaults(schema, input) as unknown as { list: { x: { deep: number[] } }[] };
      expect(JSON.stringify(input)).to.equal(snapshot);
      expect((out as unknown as typeof input).root.threshold).to.equal(3);
      out.list[0]!.x.deep.push(9);
      expect(out.list[1]!.x.deep).to.deep.equal([1]);
      expect(schema.properties.list.items.properties.x.default.deep).to.deep.equal([1]);
    });
    it('leaves values of the wrong type alone for the validator to report', () => {
      expect(applyDefaults(schema, { root: 'x' })).to.deep.equal({ mode: 'enforce', root: 'x' });
      expect(applyDefaults(schema, 'x')).to.equal('x');
    });
  });
});
