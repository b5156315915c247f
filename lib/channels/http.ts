/**
 * One small normalised request/response pair for every webhook (the grammY adapter idea):
 * channel code never sees API Gateway's event shape, and tests build requests directly.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { withCorrelationId } from '../core/log';
import { METRIC, noMetrics, type MetricsSink } from '../core/metrics';

/** A webhook request as the channel code sees it. */
export interface HttpRequest {
  method: string;
  /** Path without the query, e.g. `/wechat`. */
  path: string;
  /** The raw query string as received (Twilio signs it verbatim). */
  rawQuery: string;
  /** Query parameters; the first value wins for repeated names. */
  query: Readonly<Record<string, string>>;
  /** Header names lower-cased. */
  headers: Readonly<Record<string, string>>;
  /** The exact body bytes (base64 bodies from API Gateway are decoded): signatures are over these. */
  body: Buffer;
  /** When the request reached us (epoch ms); deadlines count from here. */
  receivedAtMs: number;
  /**
   * `https://{url-id}.lambda-url.{region}.on.aws` when the request came through the function's
   * Lambda function URL: the URL the caller used (Twilio signs it). Absent through API Gateway.
   */
  functionUrlOrigin?: string;
}

/** A webhook response. */
export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/** Largest webhook body accepted (Meta's batches go up to 3 MB). */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;

/** Parses a query string; the first value of a repeated name wins. */
export function parseQuery(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of new URLSearchParams(raw)) {
    if (!(name in out)) out[name] = value;
  }
  return out;
}

function gatewayTime(timeEpoch: number, handlerMs: number): number {
  return Number.isFinite(timeEpoch) && timeEpoch <= handlerMs && handlerMs - timeEpoch < 30_000 ? timeEpoch : handlerMs;
}

/**
 * A Lambda function URL's host (https://docs.aws.amazon.com/lambda/latest/dg/urls-configuration.html):
 * Lambda sets the event's `requestContext.domainName` to it, and a request reaches a function
 * URL only through its own host, so a caller cannot name another.
 */
const FUNCTION_URL_HOST = /^[a-z0-9]+\.lambda-url\.[a-z0-9-]+\.on\.aws$/;

/** API Gateway HTTP API or function URL (both payload 2.0) event → {@link HttpRequest}. */
export function fromApiGateway(event: APIGatewayProxyEventV2, receivedAtMs: number): HttpRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(event.headers)) {
    if (value !== undefined) headers[name.toLowerCase()] = value;
  }
  const rawBody = event.body ?? '';
  return {
    method: event.requestContext.http.method.toUpperCase(),
    path: event.rawPath,
    rawQuery: event.rawQueryString,
    query: parseQuery(event.rawQueryString),
    headers,
    body: event.isBase64Encoded ? Buffer.from(rawBody, 'base64') : Buffer.from(rawBody, 'utf8'),
    // Deadlines count from when API Gateway got the request (it includes a cold start),
    // not from when the handler ran; a clock far off is ignored.
    receivedAtMs: gatewayTime(event.requestContext.timeEpoch, receivedAtMs),
    ...(FUNCTION_URL_HOST.test(event.requestContext.domainName) ? { functionUrlOrigin: `https://${event.requestContext.domainName}` } : {}),
  };
}

/** {@link HttpResponse} → API Gateway result. */
export function toApiGateway(res: HttpResponse): APIGatewayProxyStructuredResultV2 {
  return { statusCode: res.statusCode, headers: res.headers, body: res.body };
}

/** A plain-text response. */
export function text(statusCode: number, body: string): HttpResponse {
  return { statusCode, headers: { 'content-type': 'text/plain; charset=utf-8' }, body };
}

/** A JSON response. */
export function json(statusCode: number, value: unknown): HttpResponse {
  return { statusCode, headers: { 'content-type': 'application/json' }, body: JSON.stringify(value) };
}

/** An XML response. */
export function xml(statusCode: number, body: string): HttpResponse {
  return { statusCode, headers: { 'content-type': 'application/xml; charset=utf-8' }, body };
}

/**
 * Runs a webhook handler; an unexpected failure (DynamoDB or SQS unreachable) becomes a
 * bare 500 so the vendor retries later, logged here, never echoed to the caller. Lambda's
 * Errors metric never counts these (the function returned): the 5xx alarms in serverless.yml
 * do (Api5xxAlarm for the HTTP API, one *Url5xxAlarm per function URL).
 */
export async function serve(log: { error(message: string, extra?: Record<string, unknown>): void }, fn: () => Promise<HttpResponse>): Promise<HttpResponse> {
  try {
    return await fn();
  } catch (err) {
    log.error('webhook failed', { error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    return text(500, 'internal error');
  }
}

/**
 * The Lambda handler of one channel's webhook: a disabled channel (no secrets, `deps`
 * undefined) answers 404 as if the endpoint did not exist; otherwise the event becomes an
 * {@link HttpRequest} and `handle` runs inside {@link serve}.
 */
export function webhookHandler<D>(
  channel: string,
  deps: D | undefined,
  log: { error(message: string, extra?: Record<string, unknown>): void; info(message: string, extra?: Record<string, unknown>): void },
  clock: { nowMs(): number },
  handle: (deps: D, req: HttpRequest) => Promise<HttpResponse>,
  metrics: MetricsSink = noMetrics,
): (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2> {
  return async (event) => {
    const receivedAtMs = clock.nowMs();
    if (deps === undefined) return toApiGateway(text(404, `${channel} channel is not configured`));
    // One correlation scope per request: lines logged once the message key is known carry it.
    return toApiGateway(
      await withCorrelationId(undefined, async () => {
        const res = await serve(log, () => handle(deps, fromApiGateway(event, receivedAtMs)));
        const outcome = `${String(res.statusCode).slice(0, 1)}xx`;
        metrics.count(METRIC.webhooks, { channel, outcome });
        // One line per webhook, with the message key once known: where tracing a message starts.
        log.info('webhook handled', { status: res.statusCode, ms: clock.nowMs() - receivedAtMs });
        return res;
      }),
    );
  };
}
