/**
 * `GET /health`: reports which LLM backend is in use and which channels are enabled, and
 * answers 503 naming what is missing when no LLM is configured. Deliberately touches neither
 * DynamoDB nor SQS: it answers "is this deployment configured".
 *
 * It holds no secret and no vendor setting. In a deployed stage it learns what is configured
 * from which SSM parameters exist: its role may call ssm:GetParameters on them but has no
 * kms:Decrypt, so it reads them without decryption and could not decrypt them if it tried
 * (SecureString values need the caller's kms:Decrypt,
 * https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-access.html).
 * That is simpler and truer than a list of names fixed at deploy time: a secret put after
 * the deploy shows up at the next cold start, as it does for the functions that use it.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { configuredSummary, ConfigError, functionEnv, type Env, type LlmProviderName } from '../lib/config';

/** Body of a healthy answer. */
export interface HealthOk {
  status: 'ok';
  llmProvider: LlmProviderName;
  channels: { wechat: boolean; whatsapp: boolean; twilio: boolean };
}

/** Body of an answer when the configuration is incomplete or does not validate. */
export interface HealthError {
  status: 'error';
  /** Names the missing or malformed setting, never a secret's value. */
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
 * The handler over a source of this function's environment (secrets as presence only in a
 * deployed stage; see lib/config.ts functionEnv).
 * 200 with {@link HealthOk}; 503 with {@link HealthError} on a {@link ConfigError} (no LLM
 * configured, a secret unreadable, or locally any invalid setting). Any other error
 * propagates so it shows up as a Lambda error in the metrics.
 */
export function createHealthHandler(loadEnv: () => Promise<Env>): (event?: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2> {
  return async () => {
    try {
      const env = await loadEnv();
      // Like every function, health sees only its own settings (deployed, and under `npm start`,
      // which gives each function what serverless.yml does): it cannot validate the channels'
      // settings, which other functions hold. It reports what is configured and whether an
      // LLM is there (configuredSummary fails closed in a deployed stage without one);
      // each function validates its own settings at its first invocation, and `npm start`
      // validates the whole configuration before it serves.
      return json(200, { status: 'ok', ...configuredSummary(env) });
    } catch (err) {
      if (err instanceof ConfigError) return json(503, { status: 'error', error: err.message });
      throw err;
    }
  };
}

/** Lambda handler for the HTTP API (payload 2.0) route `GET /health`. */
export const handler = createHealthHandler(() => functionEnv('health'));
