import type uPlot from 'uplot';

/**
 * A rolling window of samples for a chart: time in seconds and a value per named series.
 * Kept at module level by the pages, so leaving a page and coming back keeps its history.
 */
export class RollingSeries {
  private readonly samples: Array<{ t: number; values: Record<string, number | null> }> = [];

  constructor(private readonly windowSeconds = 600) {}

  add(t: number, values: Record<string, number | null>): void {
    this.samples.push({ t, values });
    while (this.samples.length > 0 && (this.samples[0]?.t ?? t) < t - this.windowSeconds) this.samples.shift();
  }

  get size(): number {
    return this.samples.length;
  }

  /** Every series name seen in the window, sorted. */
  labels(): string[] {
    const names = new Set<string>();
    for (const sample of this.samples) for (const name of Object.keys(sample.values)) names.add(name);
    return [...names].sort();
  }

  data(labels = this.labels()): uPlot.AlignedData {
    return [this.samples.map((sample) => sample.t), ...labels.map((label) => this.samples.map((sample) => sample.values[label] ?? null))];
  }
}
