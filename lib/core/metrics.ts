/**
 * Operational metrics in CloudWatch's embedded metric format (EMF): each data point is one
 * JSON line on stdout that CloudWatch Logs turns into a metric, so emitting costs no API call
 * (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html).
 * Written with Powertools Metrics; every point is a single metric flushed at once, because the
 * worker handles several records concurrently and a shared metrics object would mix their
 * dimensions.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

/** The CloudWatch namespace of every metric (the dashboard in serverless.yml reads it). */
export const METRICS_NAMESPACE = 'LlmGateway';

/** Metric names, shared with the dashboard. */
export const METRIC = {
  /** A webhook handled; dimensions `channel`, `outcome` (`2xx`, `4xx`, `5xx`). */
  webhooks: 'Webhooks',
  /** Webhook arrival to the model's first token, ms; dimension `channel`. */
  timeToFirstToken: 'TimeToFirstToken',
  /** Webhook arrival to the finished answer, ms; dimension `channel`. */
  timeToAnswer: 'TimeToAnswer',
  /** A WeChat reply page shown in a webhook's response; dimension `path`: `passive` (to the message itself) or `fetch` (to a "1"). */
  wechatAnswers: 'WeChatAnswers',
  /** Outbound messages sent by the worker; dimension `channel`. */
  outboundParts: 'OutboundParts',
  /** Outbound sends that failed; dimensions `channel`, `code` (the vendor's error code). */
  outboundErrors: 'OutboundErrors',
  /** LLM calls that failed or were cut; dimension `kind`. */
  llmErrors: 'LlmErrors',
  /** Tokens the model reports; dimension `kind` (`prompt`, `completion`). */
  tokens: 'Tokens',
  /** Jobs given up on and parked; dimensions `channel`, `source` (`worker`, `dlq`). */
  deadLettered: 'DeadLetteredJobs',
} as const;

/** Where metrics go. Injected, so tests can read them. */
export interface MetricsSink {
  /** Adds `value` (default 1) to a count. */
  count(name: string, dimensions: Readonly<Record<string, string>>, value?: number): void;
  /** Records a duration in milliseconds. */
  timing(name: string, dimensions: Readonly<Record<string, string>>, ms: number): void;
}

/** Drops every metric (tests and tools that do not care). */
export const noMetrics: MetricsSink = { count: () => undefined, timing: () => undefined };

/** EMF metrics for one function (`service` becomes a dimension, as Powertools does). */
export function emfMetrics(service: string): MetricsSink {
  const root = new Metrics({ namespace: METRICS_NAMESPACE, serviceName: service });
  const emit = (name: string, dimensions: Readonly<Record<string, string>>, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number): void => {
    const single = root.singleMetric();
    for (const [key, v] of Object.entries(dimensions)) single.addDimension(key, v);
    // A single metric is written as soon as it is added.
    single.addMetric(name, unit, value);
  };
  return {
    count: (name, dimensions, value = 1) => emit(name, dimensions, MetricUnit.Count, value),
    timing: (name, dimensions, ms) => emit(name, dimensions, MetricUnit.Milliseconds, Math.max(0, Math.round(ms))),
  };
}
