/**
 * `serverless package` works offline without AWS credentials, and the CloudFormation it
 * generates has what the design relies on: arm64 Node 20 functions packaged one zip each,
 * the FIFO queue with its DLQ, the table with TTL and on-demand billing, the SQS trigger
 * with ReportBatchItemFailures, and IAM scoped to this stage's table and queue.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(__dirname, '..', '..');
const FUNCTIONS = ['health', 'wechat', 'worker'] as const;
const EXPECTED_ROLE: Record<(typeof FUNCTIONS)[number], string> = { health: 'HealthRole', wechat: 'IngressRole', worker: 'WorkerRole' };
/** CloudFormation logical id serverless gives a function key. */
const LOGICAL_ID: Record<(typeof FUNCTIONS)[number], string> = { health: 'HealthLambdaFunction', wechat: 'WechatLambdaFunction', worker: 'WorkerLambdaFunction' };

type Json = unknown;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function obj(value: unknown, what: string): Record<string, unknown> {
  if (!isRecord(value)) throw new Error(`${what} is not an object`);
  return value;
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [value];
}

/** Logical ids referenced through Fn::GetAtt / Ref anywhere inside `value`. */
function referencedIds(value: Json): string[] {
  if (Array.isArray(value)) return value.flatMap(referencedIds);
  if (!isRecord(value)) return [];
  const out: string[] = [];
  for (const [key, inner] of Object.entries(value)) {
    if (key === 'Fn::GetAtt' && Array.isArray(inner) && typeof inner[0] === 'string') out.push(inner[0]);
    else if (key === 'Ref' && typeof inner === 'string') out.push(inner);
    else out.push(...referencedIds(inner));
  }
  return out;
}

/** Entry names of a zip file, from its central directory (enough to see what got packaged). */
function zipEntries(path: string): string[] {
  const buf = readFileSync(path);
  let eocd = -1;
  for (let i = buf.length - 22; i >= Math.max(0, buf.length - 65_557); i--) {
    if (buf.readUInt32LE(i) === 0x06054b50) {
      eocd = i;
      break;
    }
  }
  if (eocd < 0) throw new Error(`${path} is not a zip`);
  const count = buf.readUInt16LE(eocd + 10);
  let at = buf.readUInt32LE(eocd + 16);
  const names: string[] = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(at) !== 0x02014b50) throw new Error(`${path}: bad central directory`);
    const nameLength = buf.readUInt16LE(at + 28);
    const extraLength = buf.readUInt16LE(at + 30);
    const commentLength = buf.readUInt16LE(at + 32);
    names.push(buf.toString('utf8', at + 46, at + 46 + nameLength));
    at += 46 + nameLength + extraLength + commentLength;
  }
  return names;
}

interface RunResult {
  code: number | null;
  output: string;
  ms: number;
}

function runPackage(outDir: string, home: string, workFolder: string): Promise<RunResult> {
  // No AWS_* at all (packaging must not need an account), no telemetry or notices.
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (value !== undefined && !key.startsWith('AWS_')) env[key] = value;
  }
  Object.assign(env, {
    HOME: home, // no ~/.aws profile to fall back on either
    SLS_TELEMETRY_DISABLED: '1',
    SLS_NOTIFICATIONS_MODE: 'off',
    SLS_ESBUILD_WORK_FOLDER: workFolder,
  });
  const started = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [require.resolve('serverless/bin/serverless.js'), 'package', '--stage', 'test', '--package', outDir], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('error', fail);
    child.once('close', (code) => done({ code, output, ms: Date.now() - started }));
  });
}

describe('serverless package --stage test', () => {
  const outDir = mkdtempSync(join(tmpdir(), 'sls-package-'));
  const home = mkdtempSync(join(tmpdir(), 'sls-home-'));
  // Its own esbuild work folder: package deletes it when done, and must not touch a running
  // `npm start` (which builds under .build/) or another package run.
  const workFolder = `.esbuild/infra-test-${process.pid}`;
  let result: RunResult;
  let resources: Record<string, unknown>;

  beforeAll(async () => {
    result = await runPackage(outDir, home, workFolder);
    if (result.code !== 0) throw new Error(`serverless package failed (${result.code}):\n${result.output}`);
    const template = obj(JSON.parse(readFileSync(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8')), 'template');
    resources = obj(template.Resources, 'Resources');
  }, 240_000);

  afterAll(() => {
    rmSync(outDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
    rmSync(join(ROOT, workFolder), { recursive: true, force: true });
    try {
      rmdirSync(join(ROOT, '.esbuild')); // only if nothing else is in there
    } catch {
      // in use by another build: leave it
    }
  });

  function resource(id: string): { Type: unknown; Properties: Record<string, unknown> } {
    const r = obj(resources[id], id);
    return { Type: r.Type, Properties: obj(r.Properties, `${id}.Properties`) };
  }

  it('packages every function individually as an arm64 nodejs20.x Lambda', () => {
    const functions = Object.entries(resources).filter(([, r]) => isRecord(r) && r.Type === 'AWS::Lambda::Function');
    const zips: string[] = [];
    const sizes: string[] = [];
    for (const [id] of functions) {
      const fn = resource(id);
      expect(fn.Properties.Runtime).toBe('nodejs20.x');
      expect(fn.Properties.Architectures).toEqual(['arm64']);
      // One zip per function (package.individually), holding only that function's bundle.
      const zipName = String(obj(fn.Properties.Code, `${id}.Code`).S3Key).split('/').pop() ?? '';
      const entry = `${String(fn.Properties.Handler).replace(/\.[^.]+$/, '')}.js`;
      const entries = zipEntries(join(outDir, zipName));
      expect(entries).toContain(entry);
      // Bundled by esbuild: no node_modules shipped, no other function's code.
      expect(entries.filter((name) => name.startsWith('node_modules/'))).toEqual([]);
      expect(entries.filter((name) => name.startsWith('functions/') && name !== entry && !name.endsWith('.map'))).toEqual([]);
      // The channel simulator is local only (npm start): never shipped.
      expect(entries.filter((name) => name.startsWith('local/'))).toEqual([]);
      zips.push(zipName);
      sizes.push(`${zipName} ${(statSync(join(outDir, zipName)).size / 1024).toFixed(1)} KiB`);
    }
    expect(new Set(zips).size).toBe(functions.length);
    expect(readdirSync(outDir).filter((file) => file.endsWith('.zip')).sort()).toEqual([...zips].sort());
    // The three this stack cannot do without, each with its own least-privilege role.
    for (const name of FUNCTIONS) {
      const fn = resource(LOGICAL_ID[name]);
      expect(fn.Properties.Handler).toBe(`functions/${name}.handler`);
      expect(fn.Properties.Role).toEqual({ 'Fn::GetAtt': [EXPECTED_ROLE[name], 'Arn'] });
      expect(zips).toContain(`${name}.zip`);
    }
    // The default shared role is not generated: every function names its own.
    expect(resources.IamRoleLambdaExecution).toBeUndefined();
    process.stdout.write(`serverless package: ${result.ms} ms; ${sizes.join(', ')}\n`);
  });

  it('declares the FIFO job queue with a redrive policy to the FIFO DLQ', () => {
    const queue = resource('JobQueue');
    const dlq = resource('DeadLetterQueue');
    expect(queue.Type).toBe('AWS::SQS::Queue');
    expect(queue.Properties.FifoQueue).toBe(true);
    expect(queue.Properties.QueueName).toBe('llm-gateway-test-jobs.fifo');
    expect(queue.Properties.RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': ['DeadLetterQueue', 'Arn'] }, maxReceiveCount: 5 });
    expect(dlq.Type).toBe('AWS::SQS::Queue');
    expect(dlq.Properties.FifoQueue).toBe(true);
    expect(dlq.Properties.QueueName).toBe('llm-gateway-test-dlq.fifo');
  });

  it('declares the table on demand with TTL on expiresAtSec', () => {
    const table = resource('Table');
    expect(table.Type).toBe('AWS::DynamoDB::Table');
    expect(table.Properties.TableName).toBe('llm-gateway-test');
    expect(table.Properties.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAtSec', Enabled: true });
  });

  it('triggers the worker from the job queue with ReportBatchItemFailures', () => {
    const mappings = Object.values(resources).filter((r) => isRecord(r) && r.Type === 'AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(1);
    const props = obj(obj(mappings[0], 'mapping').Properties, 'mapping.Properties');
    expect(props.EventSourceArn).toEqual({ 'Fn::GetAtt': ['JobQueue', 'Arn'] });
    expect(props.FunctionName).toEqual({ 'Fn::GetAtt': ['WorkerLambdaFunction', 'Arn'] });
    expect(props.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    expect(props.BatchSize).toBe(5);
  });

  it('scopes every dynamodb/sqs statement to this stack’s table and queue (no "*")', () => {
    const roles = Object.entries(resources).filter(([, r]) => isRecord(r) && r.Type === 'AWS::IAM::Role');
    expect(roles.map(([id]) => id)).toEqual(expect.arrayContaining(['HealthRole', 'IngressRole', 'WorkerRole']));
    const dataActionsByRole = new Map<string, string[]>();
    for (const [id, role] of roles) {
      const policies = list(obj(obj(role, id).Properties, `${id}.Properties`).Policies);
      const roleActions: string[] = [];
      dataActionsByRole.set(id, roleActions);
      for (const policy of policies) {
        const statements = list(obj(obj(policy, `${id} policy`).PolicyDocument, `${id} document`).Statement);
        for (const statement of statements) {
          const s = obj(statement, `${id} statement`);
          const actions = list(s.Action).map(String);
          const data = actions.filter((action) => action.startsWith('dynamodb:') || action.startsWith('sqs:'));
          if (data.length === 0) continue;
          roleActions.push(...data);
          expect(s.Effect).toBe('Allow');
          expect(actions.filter((action) => action.includes('*'))).toEqual([]);
          for (const target of list(s.Resource)) {
            // Every resource is an expression over our own logical ids, never a literal ARN or wildcard.
            expect(typeof target).not.toBe('string');
            const ids = referencedIds(target);
            expect(ids.length).toBeGreaterThan(0);
            const allowed = [
              ...(data.some((action) => action.startsWith('dynamodb:')) ? ['Table'] : []),
              ...(data.some((action) => action.startsWith('sqs:')) ? ['JobQueue'] : []),
            ];
            expect(ids.filter((ref) => !allowed.includes(ref))).toEqual([]);
          }
        }
      }
    }
    expect(dataActionsByRole.get('HealthRole')).toEqual([]);
    expect(dataActionsByRole.get('IngressRole')).toContain('sqs:SendMessage');
    for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes']) {
      expect(dataActionsByRole.get('WorkerRole')).toContain(action);
    }
  });
});
