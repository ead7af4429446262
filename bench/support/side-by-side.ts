import { interleavedRounds, runInterleaved, runLoad, type LoadResult, type LoadSpec } from './load.js';
import { progress } from './report.js';

/**
 * About how long each alternating window is. Short, so that a swing of the machine's speed (it
 * moves by a third within minutes on the 2-core machines these goals are measured on, and single
 * INSERTs under group commit flip between two rates from one window to the next: bench/README.md)
 * lands in many windows of every load; long enough that a window's ramp-up is a small part of it.
 */
export const WINDOW_SECONDS = 1;

/**
 * Loads compared with each other on one server: each one's warm-up in turn, then all of them
 * measured `measureSeconds` each, in windows of about WINDOW_SECONDS that alternate between them
 * (`runInterleaved`; one window each when the time is shorter than two). Whatever else runs on the
 * machine, or a drift of its speed, then falls on every load alike instead of on whichever ran at
 * the wrong moment. `afterWarmUp` runs between the warm-ups and the measured windows (a scrape of
 * the server's metrics, say). The caller checks the results (error rates, its own acceptance).
 */
export async function measureSideBySide(
  specs: ReadonlyArray<Omit<LoadSpec, 'seconds'>>,
  warmupSeconds: number,
  measureSeconds: number,
  afterWarmUp?: () => Promise<void>,
): Promise<{ warmups: LoadResult[]; measured: LoadResult[] }> {
  const warmups: LoadResult[] = [];
  for (const spec of specs) {
    progress(`${spec.title}: warm-up ${warmupSeconds} s`);
    warmups.push(await runLoad({ ...spec, title: `${spec.title} (warm-up)`, seconds: warmupSeconds }));
  }
  await afterWarmUp?.();
  const rounds = specs.length > 1 ? interleavedRounds(measureSeconds, WINDOW_SECONDS) : 1;
  progress(
    rounds > 1
      ? `${specs.map((spec) => spec.title).join(' and ')}: ${measureSeconds} s measured each, in ${rounds} rounds of alternating windows`
      : `${specs.map((spec) => spec.title).join(' and ')}: measuring ${measureSeconds} s`,
  );
  const measured = await runInterleaved(specs, measureSeconds / rounds, rounds);
  if (measured.length !== specs.length) throw new Error('runInterleaved gave fewer results than loads');
  return { warmups, measured };
}
