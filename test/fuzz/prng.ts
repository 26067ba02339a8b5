/**
 * A small seeded PRNG (splitmix64 seeding xoshiro128**), so a fuzz run is a pure function
 * of its seed and every case can be replayed from (seed, kind, index) alone.
 */
export class Prng {
  private s: Uint32Array;

  constructor(seed: bigint | number | string) {
    let x = typeof seed === 'bigint' ? seed : BigInt.asUintN(64, BigInt(typeof seed === 'number' ? Math.floor(seed) : hashString(seed)));
    const next = () => {
      x = BigInt.asUintN(64, x + 0x9e3779b97f4a7c15n);
      let z = x;
      z = BigInt.asUintN(64, (z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n);
      z = BigInt.asUintN(64, (z ^ (z >> 27n)) * 0x94d049bb133111ebn);
      return z ^ (z >> 31n);
    };
    const a = next();
    const b = next();
    this.s = new Uint32Array([Number(a & 0xffffffffn), Number(a >> 32n), Number(b & 0xffffffffn), Number(b >> 32n)]);
    if (this.s.every((v) => v === 0)) this.s[0] = 1;
  }

  /** Uniform 32-bit unsigned integer. */
  u32(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0;
    const t = s[1]! << 9;
    s[2]! ^= s[0]!;
    s[3]! ^= s[1]!;
    s[1]! ^= s[2]!;
    s[0]! ^= s[3]!;
    s[2]! ^= t;
    s[3] = rotl(s[3]!, 11);
    return result;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    if (n <= 0) throw new RangeError(`int(${n})`);
    return Math.floor((this.u32() / 0x1_0000_0000) * n);
  }

  chance(p: number): boolean {
    return this.u32() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from nothing');
    return items[this.int(items.length)]!;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

function hashString(s: string): bigint {
  // FNV-1a 64: only to turn a textual seed into a number.
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s, 'utf8')) h = BigInt.asUintN(64, (h ^ BigInt(b)) * 0x100000001b3n);
  return h;
}

/** The seed of case `index` of `kind` in a run seeded `seed`. */
export function caseSeed(seed: string, kind: string, index: number): string {
  return `${seed}/${kind}/${index}`;
}
