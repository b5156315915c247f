/**
 * `GET /health`: reports whether the configuration validates, which LLM backend is
 * in use and which channels are enabled. Deliberately touches neither DynamoDB nor
 * SQS: it answers "is this deployment configured", and its role may only write logs.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { config, ConfigError, type LlmProviderName } from '../lib/config';

/** Body of a healthy answer. */
export interface HealthOk {
  status: 'ok';
  llmProvider: LlmProviderName;
  channels: { wechat: boolean; whatsapp: boolean; twilio: boolean };
}

/** Body of an answer when the configuration does not validate. */
export interface HealthError {
  status: 'error';
  error: string;
}

function json(statusCode: number, body: HealthOk | HealthError): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode,
    // no-store: a cached "ok" would hide a configuration broken by the next deploy.
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
    body: JSON.stringify(body),
  };
}

/**
 * Lambda handler for the HTTP API (payload 2.0) route `GET /health`.
 * 200 with {@link HealthOk}; 500 with {@link HealthError} when {@link config} throws a
 * {@link ConfigError} (its message names the variable, never a secret's value).
 * Any other error propagates so it shows up as a Lambda error in the metrics.
 */
export async function handler(_event?: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> {
  try {
    const cfg = config();
    return json(200, {
      status: 'ok',
      llmProvider: cfg.llm.provider,
      channels: { wechat: cfg.wechat !== undefined, whatsapp: cfg.whatsapp !== undefined, twilio: cfg.twilio !== undefined },
    });
  } catch (err) {
    if (err instanceof ConfigError) return json(500, { status: 'error', error: err.message });
    throw err;
  }
}
