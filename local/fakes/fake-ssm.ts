/**
 * A fake of SSM Parameter Store over real HTTP on 127.0.0.1, speaking the AWS JSON 1.1
 * protocol the SDK uses (`POST /`, `X-Amz-Target: AmazonSSM.<Operation>`):
 *
 * - `GetParameters` (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameters.html):
 *   at most 10 names; unknown names come back in `InvalidParameters`, not as an error; a
 *   SecureString read without `WithDecryption` returns an opaque ciphertext, never the value.
 * - `GetParameter` (ParameterNotFound for an unknown name).
 * - `PutParameter` (https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html):
 *   `ParameterAlreadyExists` unless `Overwrite`; the version grows.
 *
 * Names in `denied` fail the whole request with AccessDeniedException, as IAM or KMS would.
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { closeServer, isRecord, listenLocal, readBody, serveWith } from './fake-http';

/** One stored parameter. */
export interface FakeParameter {
  value: string;
  type: 'String' | 'StringList' | 'SecureString';
  version: number;
}

/** A request the fake received. */
export interface FakeSsmCall {
  operation: string;
  names: string[];
  withDecryption: boolean;
}

/** A running fake. */
export interface FakeSsm {
  /** `http://127.0.0.1:<port>`: the SDK's `endpoint` (`SSM_ENDPOINT`). */
  url: string;
  parameters: Map<string, FakeParameter>;
  /** Parameter names whose access is denied. */
  denied: Set<string>;
  calls: FakeSsmCall[];
  /** Stores a SecureString (as `npm run secrets` would). */
  put(name: string, value: string): void;
  close(): Promise<void>;
}

function ciphertext(value: string): string {
  // Stands for the KMS blob SSM returns without decryption: opaque, not the value.
  return `AQICAH${createHash('sha256').update(value).digest('base64')}`;
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((entry): entry is string => typeof entry === 'string') : [];
}

function reply(res: ServerResponse, status: number, body: unknown, errorType?: string): void {
  const headers: Record<string, string> = { 'content-type': 'application/x-amz-json-1.1' };
  if (errorType !== undefined) headers['x-amzn-errortype'] = errorType;
  res.writeHead(status, headers);
  res.end(JSON.stringify(body));
}

/** Starts the fake on 127.0.0.1 at a random port. */
export async function startFakeSsm(region = 'us-east-1'): Promise<FakeSsm> {
  const parameters = new Map<string, FakeParameter>();
  const denied = new Set<string>();
  const calls: FakeSsmCall[] = [];
  const arn = (name: string): string => `arn:aws:ssm:${region}:123456789012:parameter${name}`;
  const view = (name: string, p: FakeParameter, decrypt: boolean): Record<string, unknown> => ({
    Name: name,
    Type: p.type,
    Value: p.type === 'SecureString' && !decrypt ? ciphertext(p.value) : p.value,
    Version: p.version,
    ARN: arn(name),
    DataType: 'text',
    LastModifiedDate: 1_764_000_000,
  });

  const { server, port } = await listenLocal('fake SSM has no TCP address');
  serveWith(server, async (req: IncomingMessage, res: ServerResponse) => {
    const raw = (await readBody(req)).toString('utf8');
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.replace(/^AmazonSSM\./, '');
    const parsed: unknown = raw === '' ? {} : JSON.parse(raw);
    const body = isRecord(parsed) ? parsed : {};
    const names = operation === 'GetParameters' ? strings(body.Names) : typeof body.Name === 'string' ? [body.Name] : [];
    const withDecryption = body.WithDecryption === true;
    calls.push({ operation, names, withDecryption });
    const refused = names.filter((name) => denied.has(name));
    if (refused.length > 0) {
      reply(res, 400, { __type: 'AccessDeniedException', message: `not authorized to perform ${target} on ${refused.map(arn).join(', ')}` }, 'AccessDeniedException');
      return;
    }
    if (operation === 'GetParameters') {
      if (names.length === 0 || names.length > 10) {
        reply(res, 400, { __type: 'ValidationException', message: 'Names must hold 1 to 10 names' }, 'ValidationException');
        return;
      }
      const found = names.flatMap((name) => {
        const p = parameters.get(name);
        return p === undefined ? [] : [view(name, p, withDecryption)];
      });
      reply(res, 200, { Parameters: found, InvalidParameters: names.filter((name) => !parameters.has(name)) });
      return;
    }
    if (operation === 'GetParameter') {
      const name = names[0] ?? '';
      const p = parameters.get(name);
      if (p === undefined) {
        reply(res, 400, { __type: 'ParameterNotFound', message: '' }, 'ParameterNotFound');
        return;
      }
      reply(res, 200, { Parameter: view(name, p, withDecryption) });
      return;
    }
    if (operation === 'PutParameter') {
      const name = names[0] ?? '';
      const value = typeof body.Value === 'string' ? body.Value : '';
      const type = body.Type === 'String' || body.Type === 'StringList' || body.Type === 'SecureString' ? body.Type : undefined;
      const existing = parameters.get(name);
      if (name === '' || value === '' || type === undefined) {
        reply(res, 400, { __type: 'ValidationException', message: 'Name, Value and Type are required' }, 'ValidationException');
        return;
      }
      if (existing !== undefined && body.Overwrite !== true) {
        reply(res, 400, { __type: 'ParameterAlreadyExists', message: 'The parameter already exists.' }, 'ParameterAlreadyExists');
        return;
      }
      const version = (existing?.version ?? 0) + 1;
      parameters.set(name, { value, type, version });
      reply(res, 200, { Version: version, Tier: 'Standard' });
      return;
    }
    reply(res, 400, { __type: 'UnknownOperationException', message: target }, 'UnknownOperationException');
  });

  return {
    url: `http://127.0.0.1:${port}`,
    parameters,
    denied,
    calls,
    put(name, value) {
      const version = (parameters.get(name)?.version ?? 0) + 1;
      parameters.set(name, { value, type: 'SecureString', version });
    },
    close: () => closeServer(server),
  };
}
