/**
 * A metrics sink that keeps every point, for tests that check what an operator would see
 * (the deployed functions write the same points as EMF lines; lib/core/metrics.ts).
 */
import type { MetricsSink } from '../../lib/core/metrics';

/** One recorded point. */
export interface MetricPoint {
  name: string;
  dimensions: Record<string, string>;
  value: number;
  kind: 'count' | 'timing';
}

/** Records points in order. */
export class RecordingMetrics implements MetricsSink {
  readonly points: MetricPoint[] = [];

  count(name: string, dimensions: Readonly<Record<string, string>>, value = 1): void {
    this.points.push({ name, dimensions: { ...dimensions }, value, kind: 'count' });
  }

  timing(name: string, dimensions: Readonly<Record<string, string>>, ms: number): void {
    this.points.push({ name, dimensions: { ...dimensions }, value: ms, kind: 'timing' });
  }

  /** The sum of a count's points whose dimensions include `match`. */
  total(name: string, match: Readonly<Record<string, string>> = {}): number {
    return this.points
      .filter((p) => p.name === name && Object.entries(match).every(([k, v]) => p.dimensions[k] === v))
      .reduce((a, p) => a + p.value, 0);
  }
}
