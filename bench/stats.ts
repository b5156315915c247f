/** Shared measuring helpers for the benchmarks. */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

/** The p-th percentile of an ascending array (nearest rank). */
export function pct(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i] ?? NaN;
}

/**
 * Latencies (ms, ascending) of `count` sequential calls of a Lambda HTTP handler after 50
 * warm-up calls; any answer other than 200 aborts the run.
 */
export async function measureSequential(
  handler: (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>,
  event: (i: number) => APIGatewayProxyEventV2,
  count = 500,
): Promise<number[]> {
  for (let i = 0; i < 50; i++) await handler(event(i));
  const lat: number[] = [];
  for (let i = 0; i < count; i++) {
    const e = event(i);
    const t = performance.now();
    const res = await handler(e);
    lat.push(performance.now() - t);
    if (res.statusCode !== 200) throw new Error(`status ${res.statusCode ?? '?'}`);
  }
  return lat.sort((a, b) => a - b);
}
