/**
 * Secrets in SSM Parameter Store: one `SecureString` parameter per secret setting, named
 * `/llm-gateway/<stage>/<NAME>` and encrypted with the account's AWS-managed key
 * `alias/aws/ssm`. Functions read them at cold start through Powertools' Parameters utility
 * (https://docs.powertools.aws.dev/lambda/typescript/latest/features/parameters/);
 * `npm run secrets` writes them (scripts/secrets.ts).
 *
 * Which function reads which secret is lib/config.ts's FUNCTION_SECRETS; serverless.yml grants
 * each role exactly those parameters.
 */
import { SSMProvider } from '@aws-lambda-powertools/parameters/ssm';
import { PutParameterCommand, SSMClient } from '@aws-sdk/client-ssm';


/**
 * Every secret setting. In a deployed stage none of them is in a function's environment (nor
 * in the CloudFormation template or the zips): each is a SecureString parameter named
 * `${SSM_SECRETS_PATH}/${NAME}`, written by `npm run secrets -- --stage <stage>`.
 */
export const SECRET_NAMES = [
  'OPENAI_API_KEY',
  'DIFY_API_KEY',
  'ADMIN_TOKEN',
  'WECHAT_TOKEN',
  'WECHAT_APP_SECRET',
  'WECHAT_ENCODING_AES_KEY',
  'WECHAT_ENCODING_AES_KEY_PREVIOUS',
  'WHATSAPP_VERIFY_TOKEN',
  'WHATSAPP_APP_SECRET',
  'WHATSAPP_ACCESS_TOKEN',
  'TWILIO_AUTH_TOKEN',
] as const;

export type SecretName = (typeof SECRET_NAMES)[number];

/**
 * Reads secret parameters by setting name. {@link createSsmSecretReader} implements it over SSM
 * Parameter Store; tests may pass any other.
 */
export interface SecretReader {
  /**
   * The parameters of `names` that exist, by name: decrypted values when `decrypt`, otherwise
   * only their existence matters. A missing parameter is simply absent; any other failure
   * (access denied, KMS) rejects.
   */
  read(names: readonly SecretName[], decrypt: boolean): Promise<ReadonlyMap<string, string>>;
}

/** Where the parameters live and how to reach SSM. */
export interface SsmLocation {
  /** The stage's path, e.g. `/llm-gateway/prod` (no trailing slash). */
  path: string;
  region: string;
  /**
   * A stand-in's endpoint (tests); '' for AWS. Credentials come from the SDK's default
   * provider chain: the function's role in AWS, dummy keys in the environment locally.
   */
  endpoint: string;
}

/** The SSM client for a location. */
export function createSsmClient(loc: Omit<SsmLocation, 'path'>): SSMClient {
  return new SSMClient({
    region: loc.region,
    ...(loc.endpoint === '' ? {} : { endpoint: loc.endpoint }),
  });
}

/** The parameter name of a secret setting under a stage's path. */
export function parameterName(path: string, name: string): string {
  return `${path}/${name}`;
}

/**
 * How long Powertools keeps a value. The functions read their secrets once per cold start
 * (lib/config.ts memoises the result), so this only matters to a caller that reads again.
 */
const MAX_AGE_SEC = 300;

/**
 * A {@link SecretReader} over SSM: `GetParameters` in batches of ten (Powertools'
 * getParametersByName), missing parameters reported apart from the values
 * (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameters.html:
 * unknown names come back in `InvalidParameters`, not as an error). Access or KMS
 * failures reject.
 */
export function createSsmSecretReader(loc: SsmLocation, client: SSMClient = createSsmClient(loc)): SecretReader {
  const provider = new SSMProvider({ awsSdkV3Client: client });
  return {
    async read(names: readonly SecretName[], decrypt: boolean): Promise<ReadonlyMap<string, string>> {
      const out = new Map<string, string>();
      if (names.length === 0) return out;
      const request: Record<string, { decrypt: boolean; maxAge: number }> = {};
      for (const name of names) request[parameterName(loc.path, name)] = { decrypt, maxAge: MAX_AGE_SEC };
      const found = await provider.getParametersByName<string>(request, { decrypt, maxAge: MAX_AGE_SEC, throwOnError: false });
      for (const name of names) {
        const value = found[parameterName(loc.path, name)];
        if (typeof value === 'string' && value.trim() !== '') out.set(name, value);
      }
      return out;
    },
  };
}

/** Largest value of a standard-tier parameter (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html). */
export const MAX_PARAMETER_BYTES = 4096;

/** Options of {@link putSecrets}. */
export interface PutSecretsOptions {
  path: string;
  /** Where the values come from (`.env` under the environment). */
  env: Readonly<Record<string, string | undefined>>;
  names: readonly SecretName[];
  /** Print what would be written, write nothing. */
  dryRun: boolean;
  /** One line per parameter; never a value. */
  print: (line: string) => void;
}

/** What {@link putSecrets} did, by setting name. */
export interface PutSecretsResult {
  written: string[];
  skipped: string[];
}

/**
 * Writes every set secret of `names` as a SecureString under `path`, overwriting (the key is
 * the AWS-managed `alias/aws/ssm`, the default for SecureString). Unset ones are skipped
 * (an existing parameter is left alone). Values are checked before anything is written.
 */
export async function putSecrets(client: SSMClient | undefined, opts: PutSecretsOptions): Promise<PutSecretsResult> {
  const toWrite: { name: string; value: string }[] = [];
  const skipped: string[] = [];
  for (const name of opts.names) {
    const value = (opts.env[name] ?? '').trim();
    if (value === '') {
      skipped.push(name);
      continue;
    }
    if (Buffer.byteLength(value, 'utf8') > MAX_PARAMETER_BYTES) {
      throw new Error(`${name} is longer than ${MAX_PARAMETER_BYTES} bytes, the limit of a standard SSM parameter`);
    }
    toWrite.push({ name, value });
  }
  for (const { name, value } of toWrite) {
    const parameter = parameterName(opts.path, name);
    if (opts.dryRun || client === undefined) {
      opts.print(`would put ${parameter} (SecureString)`);
      continue;
    }
    await client.send(new PutParameterCommand({ Name: parameter, Value: value, Type: 'SecureString', Overwrite: true }));
    opts.print(`put ${parameter} (SecureString)`);
  }
  for (const name of skipped) opts.print(`skipped ${name} (not set)`);
  return { written: toWrite.map((entry) => entry.name), skipped };
}
