import { expect } from 'vitest';
import type { Prng } from './golden-segments.js';

/** Bookkeeping shared by the decoder fuzz tests: what each input ended in, and what went wrong. */
export interface Tally {
  inputs: number;
  byCode: Map<string, number>;
  failures: string[];
  slowest: number;
}

export const newTally = (): Tally => ({ inputs: 0, byCode: new Map(), failures: [], slowest: 0 });

/** Print the outcome counts, and fail with the first failures when there are any. */
export function report(tally: Tally): void {
  const summary = [...tally.byCode.entries()].map(([code, n]) => `${code}=${n}`).join(' ');
  console.log(`${tally.inputs} inputs: ${summary}; slowest ${tally.slowest.toFixed(0)} ms`);
  expect(
    tally.failures.slice(0, 10),
    `${tally.failures.length} failures of ${tally.inputs} (${summary}; slowest ${tally.slowest.toFixed(0)} ms)`,
  ).toEqual([]);
}

/** A u32 other than `truth`: off by a little (the dangerous kind of lie) or anything at all. */
export function differentU32(prng: Prng, truth: number): number {
  for (;;) {
    const candidate = prng.chance(0.6) ? truth + prng.between(-8, 8) : prng.chance(0.5) ? prng.u32() : prng.below(300);
    if (candidate !== truth && candidate >= 0 && candidate <= 0xffff_ffff) return candidate;
  }
}
