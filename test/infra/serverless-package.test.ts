/**
 * `serverless package --stage prod` works offline without AWS credentials, with every secret
 * exported in the deploying shell, and the CloudFormation and zips it generates have what the
 * design relies on: arm64 nodejs24.x functions packaged one zip each; no secret value anywhere
 * in the template or the bundles; each function with only its settings and its role with only
 * its secrets' parameters; the FIFO queue with its DLQ; the retained, protected table with
 * PITR and TTL; the SQS trigger with ReportBatchItemFailures; DynamoDB access scoped by key
 * prefix; the alarms and their topic; and the optional fixed egress IP for WeChat.
 */
import { METRIC, METRICS_NAMESPACE } from '../../lib/core/metrics';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import { FUNCTION_SECRETS, SECRET_NAMES, type FunctionName } from '../../lib/config';

const ROOT = resolve(__dirname, '..', '..');
const STAGE = 'prod';
/** serverless.yml's function keys and the CloudFormation logical ids serverless gives them. */
const LOGICAL_ID: Record<FunctionName, string> = {
  health: 'HealthLambdaFunction',
  wechat: 'WechatLambdaFunction',
  whatsapp: 'WhatsappLambdaFunction',
  twilioMessaging: 'TwilioMessagingLambdaFunction',
  twilioVoice: 'TwilioVoiceLambdaFunction',
  admin: 'AdminLambdaFunction',
  worker: 'WorkerLambdaFunction',
  deadLetter: 'DeadLetterLambdaFunction',
};
const FUNCTIONS = Object.keys(LOGICAL_ID).filter((name): name is FunctionName => name in FUNCTION_SECRETS);
const EXPECTED_ROLE: Record<FunctionName, string> = {
  health: 'HealthRole',
  wechat: 'WeChatRole',
  whatsapp: 'WhatsAppRole',
  twilioMessaging: 'TwilioRole',
  twilioVoice: 'TwilioRole',
  admin: 'AdminRole',
  worker: 'WorkerRole',
  deadLetter: 'DeadLetterRole',
};
/** A distinct, recognisable value per secret, exported in the packaging shell. */
const SECRET_VALUES: Record<string, string> = Object.fromEntries(SECRET_NAMES.map((name, i) => [name, `canary-${name.toLowerCase()}-${String(i).padStart(2, '0')}-9f4c`]));
/** Settings that are no channel's or LLM's business (what health may carry). */
const GENERIC_SETTINGS = ['NODE_OPTIONS', 'LOG_LEVEL', 'SSM_SECRETS_PATH', 'LLM_PROVIDER'];

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

/** One file in a zip. */
interface ZipEntry {
  name: string;
  data: Buffer;
}

/** Every entry of a zip file, decompressed (stored or deflated, as serverless writes them). */
function zipEntries(path: string): ZipEntry[] {
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
  const entries: ZipEntry[] = [];
  for (let n = 0; n < count; n++) {
    if (buf.readUInt32LE(at) !== 0x02014b50) throw new Error(`${path}: bad central directory`);
    const method = buf.readUInt16LE(at + 10);
    const compressedSize = buf.readUInt32LE(at + 20);
    const nameLength = buf.readUInt16LE(at + 28);
    const extraLength = buf.readUInt16LE(at + 30);
    const commentLength = buf.readUInt16LE(at + 32);
    const localOffset = buf.readUInt32LE(at + 42);
    const name = buf.toString('utf8', at + 46, at + 46 + nameLength);
    if (buf.readUInt32LE(localOffset) !== 0x04034b50) throw new Error(`${path}: bad local header for ${name}`);
    const dataStart = localOffset + 30 + buf.readUInt16LE(localOffset + 26) + buf.readUInt16LE(localOffset + 28);
    const raw = buf.subarray(dataStart, dataStart + compressedSize);
    if (method !== 0 && method !== 8) throw new Error(`${path}: ${name} uses compression method ${method}`);
    entries.push({ name, data: method === 8 ? inflateRawSync(raw) : Buffer.from(raw) });
    at += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

/** Every value in `value` that is a string (deep). */
function strings(value: Json): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(strings);
  if (isRecord(value)) return Object.values(value).flatMap(strings);
  return [];
}

interface RunResult {
  code: number | null;
  output: string;
  ms: number;
}

function runPackage(outDir: string, home: string, workFolder: string, extraArgs: readonly string[] = []): Promise<RunResult> {
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
    // Every secret set in the deploying shell, as an operator with a full .env would have.
    ...SECRET_VALUES,
  });
  // Deploy-time switches come from --param only here.
  delete env.WECHAT_FIXED_IP;
  delete env.ALARM_EMAIL;
  const started = Date.now();
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [require.resolve('serverless/bin/serverless.js'), 'package', '--stage', STAGE, '--package', outDir, ...extraArgs], {
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

/** A parsed template: its resources, conditions and outputs. */
interface Template {
  resources: Record<string, unknown>;
  conditions: Record<string, unknown>;
  outputs: Record<string, unknown>;
}

function readTemplate(outDir: string): Template {
  const template = obj(JSON.parse(readFileSync(join(outDir, 'cloudformation-template-update-stack.json'), 'utf8')), 'template');
  return {
    resources: obj(template.Resources, 'Resources'),
    conditions: obj(template.Conditions ?? {}, 'Conditions'),
    outputs: obj(template.Outputs ?? {}, 'Outputs'),
  };
}

/** A policy statement with its actions as a list. */
interface Statement {
  effect: unknown;
  actions: string[];
  resource: unknown;
  condition: Record<string, unknown> | undefined;
}

function statementsOf(resources: Record<string, unknown>, roleId: string): Statement[] {
  const props = obj(obj(resources[roleId], roleId).Properties, `${roleId}.Properties`);
  return list(props.Policies).flatMap((policy) =>
    list(obj(obj(policy, `${roleId} policy`).PolicyDocument, `${roleId} document`).Statement).map((statement) => {
      const st = obj(statement, `${roleId} statement`);
      return { effect: st.Effect, actions: list(st.Action).map(String), resource: st.Resource, condition: isRecord(st.Condition) ? st.Condition : undefined };
    }),
  );
}

/** The SSM parameter ARN expression of a secret, as serverless.yml writes it. */
function parameterArn(name: string): unknown {
  return { 'Fn::Sub': `arn:\${AWS::Partition}:ssm:\${AWS::Region}:\${AWS::AccountId}:parameter/llm-gateway/${STAGE}/${name}` };
}

describe(`serverless package --stage ${STAGE} with every secret in the shell`, () => {
  const outDir = mkdtempSync(join(tmpdir(), 'sls-package-'));
  const home = mkdtempSync(join(tmpdir(), 'sls-home-'));
  // Its own esbuild work folder: package deletes it when done, and must not touch a running
  // `npm start` (which builds under .build/) or another package run.
  const workFolder = `.esbuild/infra-test-${process.pid}`;
  let result: RunResult;
  let resources: Record<string, unknown>;
  let template: Template;

  beforeAll(async () => {
    result = await runPackage(outDir, home, workFolder);
    if (result.code !== 0) throw new Error(`serverless package failed (${result.code}):\n${result.output}`);
    template = readTemplate(outDir);
    resources = template.resources;
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

  function resource(id: string): { Type: unknown; Properties: Record<string, unknown>; raw: Record<string, unknown> } {
    const r = obj(resources[id], id);
    return { Type: r.Type, Properties: obj(r.Properties, `${id}.Properties`), raw: r };
  }

  function environmentOf(fn: FunctionName): Record<string, unknown> {
    const env = resource(LOGICAL_ID[fn]).Properties.Environment;
    return isRecord(env) ? obj(env.Variables, `${fn} variables`) : {};
  }

  it('packages every function individually as an arm64 nodejs24.x Lambda', () => {
    const functions = Object.entries(resources).filter(([, r]) => isRecord(r) && r.Type === 'AWS::Lambda::Function');
    const zips: string[] = [];
    const sizes: string[] = [];
    for (const [id] of functions) {
      const fn = resource(id);
      expect(fn.Properties.Runtime).toBe('nodejs24.x');
      expect(fn.Properties.Architectures).toEqual(['arm64']);
      // One zip per function (package.individually), holding only that function's bundle.
      const zipName = String(obj(fn.Properties.Code, `${id}.Code`).S3Key).split('/').pop() ?? '';
      const entry = `${String(fn.Properties.Handler).replace(/\.[^.]+$/, '')}.js`;
      const entries = zipEntries(join(outDir, zipName)).map((e) => e.name);
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
    expect(functions).toHaveLength(FUNCTIONS.length);
    expect(readdirSync(outDir).filter((file) => file.endsWith('.zip')).sort()).toEqual([...zips].sort());
    // Each function with its own least-privilege role.
    for (const name of FUNCTIONS) {
      const fn = resource(LOGICAL_ID[name]);
      expect(fn.Properties.Role).toEqual({ 'Fn::GetAtt': [EXPECTED_ROLE[name], 'Arn'] });
      expect(zips).toContain(`${name}.zip`);
    }
    // The default shared role is not generated: every function names its own.
    expect(resources.IamRoleLambdaExecution).toBeUndefined();
    process.stdout.write(`serverless package: ${result.ms} ms; ${sizes.join(', ')}\n`);
  });

  it('puts no secret value in the template, the state file or any bundle', () => {
    const files = readdirSync(outDir);
    const leaks: string[] = [];
    for (const file of files) {
      const contents = file.endsWith('.zip') ? zipEntries(join(outDir, file)).map((e) => ({ where: `${file}:${e.name}`, text: e.data.toString('latin1') })) : [{ where: file, text: readFileSync(join(outDir, file), 'latin1') }];
      for (const { where, text } of contents) {
        for (const [name, value] of Object.entries(SECRET_VALUES)) if (text.includes(value)) leaks.push(`${name} in ${where}`);
      }
    }
    expect(files.filter((file) => file.endsWith('.json'))).toContain('cloudformation-template-update-stack.json');
    // The bundles were really read: each one's code names the setting it reads its secrets by.
    for (const fn of FUNCTIONS) {
      const bundle = zipEntries(join(outDir, `${fn}.zip`)).find((e) => e.name.endsWith('.js'));
      expect(bundle?.data.toString('utf8')).toContain('SSM_SECRETS_PATH');
    }
    expect(leaks).toEqual([]);
    // Nor a secret's name as a function setting, with any value.
    for (const fn of FUNCTIONS) expect(Object.keys(environmentOf(fn)).filter((name) => SECRET_NAMES.some((secret) => secret === name))).toEqual([]);
  });

  it('gives each function only the settings it needs', () => {
    expect(Object.keys(environmentOf('health')).sort()).toEqual([...GENERIC_SETTINGS].sort());
    for (const fn of FUNCTIONS) {
      const names = Object.keys(environmentOf(fn));
      expect(environmentOf(fn).SSM_SECRETS_PATH).toBe(`/llm-gateway/${STAGE}`);
      // Only the worker talks to the LLM, so only it carries SYSTEM_PROMPT and the OpenAI settings.
      if (fn !== 'worker') expect(names.filter((name) => name === 'SYSTEM_PROMPT' || name.startsWith('OPENAI_') || name.startsWith('DIFY_'))).toEqual([]);
      // A webhook carries its own channel's settings, no other's.
      const prefixes: Partial<Record<FunctionName, string[]>> = { wechat: ['WECHAT_'], whatsapp: ['WHATSAPP_'], twilioMessaging: ['TWILIO_'], twilioVoice: ['TWILIO_'] };
      const own = prefixes[fn];
      if (own !== undefined) {
        const foreign = names.filter((name) => /^(WECHAT|WHATSAPP|TWILIO)_/.test(name) && !own.some((prefix) => name.startsWith(prefix)));
        expect(foreign).toEqual([]);
      }
    }
    expect(Object.keys(environmentOf('admin')).sort()).toEqual(['LOG_LEVEL', 'NODE_OPTIONS', 'SSM_SECRETS_PATH', 'TABLE_NAME']);
    expect(Object.keys(environmentOf('worker'))).toEqual(expect.arrayContaining(['SYSTEM_PROMPT', 'OPENAI_MODEL', 'WECHAT_APP_ID', 'WHATSAPP_PHONE_NUMBER_ID', 'TWILIO_ACCOUNT_SID']));
    // Lambda's limit is 4 KB for all of a function's variables; the names alone stay far below.
    for (const fn of FUNCTIONS) expect(Object.keys(environmentOf(fn)).join('').length).toBeLessThan(1500);
  });

  it('defaults PUBLIC_BASE_URL to the stack’s own HTTP API URL', () => {
    const expected = { 'Fn::Join': ['', ['https://', { Ref: 'HttpApi' }, '.execute-api.', { Ref: 'AWS::Region' }, '.', { Ref: 'AWS::URLSuffix' }]] };
    expect(resource('HttpApi').Type).toBe('AWS::ApiGatewayV2::Api');
    for (const fn of ['twilioMessaging', 'twilioVoice', 'worker'] as const) expect(environmentOf(fn).PUBLIC_BASE_URL).toEqual(expected);
    expect(obj(template.outputs.ApiUrl, 'ApiUrl').Value).toEqual(expected);
  });

  it('gives every webhook a public function URL, and outputs the URLs to give the vendors', () => {
    // Vendors cannot sign AWS requests: the URLs are public (AuthType NONE) and the handlers
    // check the vendor's own signature. Since October 2025 a public function URL needs both
    // permissions (https://docs.aws.amazon.com/lambda/latest/dg/urls-auth.html).
    const urls = Object.entries(resources).filter(([, r]) => isRecord(r) && r.Type === 'AWS::Lambda::Url');
    expect(urls.map(([id]) => id).sort()).toEqual(['TwilioMessagingLambdaFunctionUrl', 'TwilioVoiceLambdaFunctionUrl', 'WechatLambdaFunctionUrl', 'WhatsappLambdaFunctionUrl']);
    const outputs = [
      ['wechat', 'WeChatWebhookUrl', ''],
      ['whatsapp', 'WhatsAppWebhookUrl', ''],
      ['twilioMessaging', 'TwilioMessagingWebhookUrl', 'twilio/messaging'],
      ['twilioVoice', 'TwilioVoiceWebhookUrl', 'twilio/voice'],
    ] as const;
    for (const [fn, output, path] of outputs) {
      const config = resource(`${LOGICAL_ID[fn]}Url`).Properties;
      expect([config.AuthType, config.TargetFunctionArn, config.Cors]).toEqual(['NONE', { 'Fn::GetAtt': [LOGICAL_ID[fn], 'Arn'] }, undefined]);
      const permissions = Object.values(resources)
        .filter(isRecord)
        .filter((r) => r.Type === 'AWS::Lambda::Permission' && isRecord(r.Properties) && JSON.stringify(r.Properties.FunctionName).includes(`"${LOGICAL_ID[fn]}"`) && r.Properties.Principal === '*')
        .map((r) => obj(r.Properties, 'Properties'));
      expect(permissions.map((p) => [p.Action, p.FunctionUrlAuthType ?? p.InvokedViaFunctionUrl]).sort()).toEqual([
        ['lambda:InvokeFunction', true],
        ['lambda:InvokeFunctionUrl', 'NONE'],
      ]);
      const url = { 'Fn::GetAtt': [`${LOGICAL_ID[fn]}Url`, 'FunctionUrl'] };
      expect(obj(template.outputs[output], output).Value).toEqual(path === '' ? url : { 'Fn::Join': ['', [url, path]] });
    }
    expect(template.conditions.FunctionUrls).toEqual({ 'Fn::Or': [{ 'Fn::Equals': ['true', 'true'] }, { 'Fn::Equals': ['true', '1'] }] });
  });

  it('lets each role read exactly its function’s secrets, and decrypt only those it uses', () => {
    for (const fn of FUNCTIONS) {
      const statements = statementsOf(resources, EXPECTED_ROLE[fn]);
      const ssm = statements.filter((s) => s.actions.some((action) => action.startsWith('ssm:')));
      const kms = statements.filter((s) => s.actions.some((action) => action.startsWith('kms:')));
      const needs = FUNCTION_SECRETS[fn];
      expect(ssm.flatMap((s) => s.actions).sort()).toEqual(['ssm:GetParameter', 'ssm:GetParameters']);
      expect(ssm.flatMap((s) => list(s.resource))).toEqual(expect.arrayContaining([...needs.read, ...needs.exists].map(parameterArn)));
      expect(ssm.flatMap((s) => list(s.resource))).toHaveLength(needs.read.length + needs.exists.length);
      if (needs.read.length === 0) {
        expect(kms).toEqual([]);
        continue;
      }
      expect(kms).toHaveLength(1);
      const decrypt = kms[0];
      expect(decrypt?.actions).toEqual(['kms:Decrypt']);
      const equals = obj(decrypt?.condition?.StringEquals, `${fn} kms condition`);
      expect(equals['kms:ViaService']).toEqual({ 'Fn::Sub': 'ssm.${AWS::Region}.amazonaws.com' });
      expect(list(equals['kms:EncryptionContext:PARAMETER_ARN'])).toEqual(needs.read.map(parameterArn));
    }
    // Roles shared by two functions (Twilio) must fit both.
    expect(FUNCTION_SECRETS.twilioMessaging).toEqual(FUNCTION_SECRETS.twilioVoice);
    // Health and the webhooks never decrypt an LLM key.
    for (const fn of ['health', 'wechat', 'whatsapp', 'twilioMessaging', 'admin'] as const) {
      const arns = statementsOf(resources, EXPECTED_ROLE[fn])
        .filter((s) => s.actions.includes('kms:Decrypt'))
        .flatMap((s) => strings(s.condition ?? {}));
      expect(arns.filter((arn) => /OPENAI_API_KEY|DIFY_API_KEY/.test(arn))).toEqual([]);
    }
  });

  it('declares the FIFO job queue with a redrive policy to the FIFO DLQ', () => {
    const queue = resource('JobQueue');
    const dlq = resource('DeadLetterQueue');
    expect(queue.Type).toBe('AWS::SQS::Queue');
    expect(queue.Properties.FifoQueue).toBe(true);
    expect(queue.Properties.QueueName).toBe(`llm-gateway-${STAGE}-jobs.fifo`);
    // High-throughput FIFO: without it the queue caps at 300 sends/s
    // (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/high-throughput-fifo.html).
    expect(queue.Properties.DeduplicationScope).toBe('messageGroup');
    expect(queue.Properties.FifoThroughputLimit).toBe('perMessageGroupId');
    expect(queue.Properties.RedrivePolicy).toEqual({ deadLetterTargetArn: { 'Fn::GetAtt': ['DeadLetterQueue', 'Arn'] }, maxReceiveCount: 5 });
    expect(dlq.Type).toBe('AWS::SQS::Queue');
    expect(dlq.Properties.FifoQueue).toBe(true);
    expect(dlq.Properties.QueueName).toBe(`llm-gateway-${STAGE}-dlq.fifo`);
    // Lambda refuses an SQS trigger whose queue hides a message for less than the function may run.
    const deadLetterFn = resource('DeadLetterLambdaFunction');
    expect(Number(dlq.Properties.VisibilityTimeout)).toBeGreaterThanOrEqual(Number(deadLetterFn.Properties.Timeout));
    expect(Number(queue.Properties.VisibilityTimeout)).toBeGreaterThanOrEqual(Number(resource('WorkerLambdaFunction').Properties.Timeout));
  });

  it('declares the table on demand with TTL, point-in-time recovery, deletion protection and retain policies', () => {
    const table = resource('Table');
    expect(table.Type).toBe('AWS::DynamoDB::Table');
    expect(table.Properties.TableName).toBe(`llm-gateway-${STAGE}`);
    expect(table.Properties.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAtSec', Enabled: true });
    expect(table.Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(table.Properties.DeletionProtectionEnabled).toBe(true);
    expect(table.raw.DeletionPolicy).toBe('Retain');
    expect(table.raw.UpdateReplacePolicy).toBe('Retain');
  });

  it('triggers the worker from the job queue and the dead-letter function from the DLQ, with ReportBatchItemFailures', () => {
    const mappings = Object.values(resources)
      .filter((r) => isRecord(r) && r.Type === 'AWS::Lambda::EventSourceMapping')
      .map((m) => obj(obj(m, 'mapping').Properties, 'mapping.Properties'));
    expect(mappings).toHaveLength(2);
    const worker = mappings.find((p) => JSON.stringify(p.EventSourceArn) === JSON.stringify({ 'Fn::GetAtt': ['JobQueue', 'Arn'] }));
    expect(worker?.FunctionName).toEqual({ 'Fn::GetAtt': ['WorkerLambdaFunction', 'Arn'] });
    expect(worker?.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    expect(worker?.BatchSize).toBe(5);
    // A burst of users cannot take the account's concurrency from the webhooks.
    expect(worker?.ScalingConfig).toEqual({ MaximumConcurrency: 50 });
    const deadLetter = mappings.find((p) => JSON.stringify(p.EventSourceArn) === JSON.stringify({ 'Fn::GetAtt': ['DeadLetterQueue', 'Arn'] }));
    expect(deadLetter?.FunctionName).toEqual({ 'Fn::GetAtt': ['DeadLetterLambdaFunction', 'Arn'] });
    expect(deadLetter?.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
  });

  it('has no wildcard action and scopes every dynamodb/sqs statement to this stack, DynamoDB by key prefix', () => {
    const roles = Object.entries(resources).filter(([, r]) => isRecord(r) && r.Type === 'AWS::IAM::Role');
    expect(roles.map(([id]) => id).sort()).toEqual([...new Set(Object.values(EXPECTED_ROLE))].sort());
    const dataActionsByRole = new Map<string, string[]>();
    const prefixesByRole = new Map<string, string[]>();
    for (const [id] of roles) {
      const roleActions: string[] = [];
      const rolePrefixes: string[] = [];
      dataActionsByRole.set(id, roleActions);
      prefixesByRole.set(id, rolePrefixes);
      for (const s of statementsOf(resources, id)) {
        expect(s.effect).toBe('Allow');
        expect(s.actions.filter((action) => action.includes('*'))).toEqual([]);
        const data = s.actions.filter((action) => action.startsWith('dynamodb:') || action.startsWith('sqs:'));
        if (data.length === 0) continue;
        roleActions.push(...data);
        for (const target of list(s.resource)) {
          // Every resource is an expression over our own logical ids, never a literal ARN or wildcard.
          expect(typeof target).not.toBe('string');
          const ids = referencedIds(target);
          expect(ids.length).toBeGreaterThan(0);
          const allowed = [...(data.some((action) => action.startsWith('dynamodb:')) ? ['Table'] : []), ...(data.some((action) => action.startsWith('sqs:')) ? ['JobQueue', 'DeadLetterQueue'] : [])];
          expect(ids.filter((ref) => !allowed.includes(ref))).toEqual([]);
        }
        if (data.some((action) => action.startsWith('dynamodb:'))) {
          // https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/specifying-conditions.html
          const like = obj(s.condition?.['ForAllValues:StringLike'], `${id} LeadingKeys condition`);
          const prefixes = list(like['dynamodb:LeadingKeys']).map(String);
          expect(prefixes.length).toBeGreaterThan(0);
          expect(prefixes.filter((prefix) => prefix === '*')).toEqual([]);
          rolePrefixes.push(...prefixes);
        }
      }
    }
    expect(dataActionsByRole.get('HealthRole')).toEqual([]);
    for (const role of ['WeChatRole', 'WhatsAppRole', 'TwilioRole']) expect(dataActionsByRole.get(role)).toContain('sqs:SendMessage');
    for (const action of ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:GetQueueAttributes']) expect(dataActionsByRole.get('WorkerRole')).toContain(action);
    // The admin endpoint reads the contact directory only, never conversations or tokens.
    expect(dataActionsByRole.get('AdminRole')?.sort()).toEqual(['dynamodb:GetItem', 'dynamodb:Query']);
    expect([...new Set(prefixesByRole.get('AdminRole'))]).toEqual(['contact#directory']);
    // A webhook touches its own channel's records only.
    expect([...new Set(prefixesByRole.get('WeChatRole'))].sort()).toEqual(['user#wechat#*', 'wxsig#*']);
    expect([...new Set(prefixesByRole.get('WhatsAppRole'))].sort()).toEqual(['state#whatsapp#*', 'user#whatsapp#*']);
    expect([...new Set(prefixesByRole.get('TwilioRole'))].sort()).toEqual(['state#twilio#*', 'user#twilio#*']);
    expect(prefixesByRole.get('WorkerRole')).toEqual(expect.arrayContaining(['user#*', 'conv#*', 'state#*', 'rate#*', 'contact#directory', 'token#wechat#*']));
    // The dead-letter function finishes records and tells users: no conversations, rate windows or contacts.
    expect([...new Set(prefixesByRole.get('DeadLetterRole'))].sort()).toEqual(['state#*', 'token#wechat#*', 'user#*']);
  });

  it('alarms on the DLQ, the oldest job’s age, worker errors, worker and webhook throttles, and API and function URL 5xx, to one SNS topic', () => {
    const alarms = Object.entries(resources)
      .filter(([, r]) => isRecord(r) && r.Type === 'AWS::CloudWatch::Alarm')
      .map(([id]) => ({ id, props: resource(id).Properties }));
    const find = (namespace: string, metric: string): Record<string, unknown> | undefined =>
      alarms.find((alarm) => alarm.props.Namespace === namespace && alarm.props.MetricName === metric)?.props;
    const dlq = find('AWS/SQS', 'ApproximateNumberOfMessagesVisible');
    expect(dlq?.Dimensions).toEqual([{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['DeadLetterQueue', 'QueueName'] } }]);
    expect([dlq?.Threshold, dlq?.ComparisonOperator]).toEqual([0, 'GreaterThanThreshold']);
    const age = find('AWS/SQS', 'ApproximateAgeOfOldestMessage');
    expect(age?.Dimensions).toEqual([{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['JobQueue', 'QueueName'] } }]);
    expect(age?.Threshold).toBe(300);
    const error = find('AWS/Lambda', 'Errors');
    expect(error?.Dimensions).toEqual([{ Name: 'FunctionName', Value: { Ref: 'WorkerLambdaFunction' } }]);
    expect([error?.Threshold, error?.ComparisonOperator]).toEqual([0, 'GreaterThanThreshold']);
    // Throttles: the worker's, and each webhook's (a throttled webhook never runs; Twilio may not retry it).
    const throttles = alarms.filter((alarm) => alarm.props.Namespace === 'AWS/Lambda' && alarm.props.MetricName === 'Throttles');
    expect(throttles.map((alarm) => JSON.stringify(alarm.props.Dimensions)).sort()).toEqual(
      ['TwilioMessagingLambdaFunction', 'TwilioVoiceLambdaFunction', 'WechatLambdaFunction', 'WhatsappLambdaFunction', 'WorkerLambdaFunction'].map((id) => JSON.stringify([{ Name: 'FunctionName', Value: { Ref: id } }])),
    );
    for (const alarm of throttles) expect([alarm.props.Threshold, alarm.props.ComparisonOperator, alarm.props.TreatMissingData]).toEqual([0, 'GreaterThanThreshold', 'notBreaching']);
    const api = find('AWS/ApiGateway', '5xx');
    expect(api?.Dimensions).toEqual([{ Name: 'ApiId', Value: { Ref: 'HttpApi' } }]);
    // The function URLs' 5xx, which the API's metric does not see: one alarm per webhook function.
    const urlAlarms = alarms.filter((alarm) => alarm.props.Namespace === 'AWS/Lambda' && alarm.props.MetricName === 'Url5xxCount');
    expect(urlAlarms.map((alarm) => JSON.stringify(alarm.props.Dimensions)).sort()).toEqual(
      ['TwilioMessagingLambdaFunction', 'TwilioVoiceLambdaFunction', 'WechatLambdaFunction', 'WhatsappLambdaFunction'].map((id) => JSON.stringify([{ Name: 'FunctionName', Value: { Ref: id } }])),
    );
    for (const alarm of urlAlarms) {
      expect([alarm.props.Statistic, alarm.props.Threshold, alarm.props.ComparisonOperator, alarm.props.TreatMissingData]).toEqual(['Sum', 0, 'GreaterThanThreshold', 'notBreaching']);
      expect(obj(resources[alarm.id], alarm.id).Condition).toBe('FunctionUrls');
    }
    expect(alarms).toHaveLength(13);
    expect(resource('AlarmTopic').Type).toBe('AWS::SNS::Topic');
    for (const alarm of alarms) expect(alarm.props.AlarmActions).toEqual([{ Ref: 'AlarmTopic' }]);
    // The e-mail subscription exists only when an address is given.
    expect(obj(resources.AlarmEmailSubscription, 'AlarmEmailSubscription').Condition).toBe('HasAlarmEmail');
    expect(template.conditions.HasAlarmEmail).toEqual({ 'Fn::Not': [{ 'Fn::Equals': ['', ''] }] });
  });

  it('has a dashboard of the EMF metrics the functions emit and of every alarm', () => {
    const dashboard = resource('Dashboard');
    expect(dashboard.Type).toBe('AWS::CloudWatch::Dashboard');
    // The body is a JSON string joined around the region and the alarms' ARNs.
    const join = obj(dashboard.Properties.DashboardBody, 'DashboardBody')['Fn::Join'];
    if (!Array.isArray(join) || !Array.isArray(join[1])) throw new Error('DashboardBody is not an Fn::Join');
    const refs: unknown[] = [];
    // A part under a condition (Fn::If) counts as its branch for a deploy where it holds.
    const isList = (value: unknown): value is readonly unknown[] => Array.isArray(value);
    const at = (value: unknown, key: string, index: number): unknown => {
      const list = isRecord(value) ? value[key] : undefined;
      return isList(list) ? list[index] : undefined;
    };
    const parts = (list: readonly unknown[]): unknown[] =>
      list.flatMap((part): unknown[] => {
        const branch = at(part, 'Fn::If', 1) ?? part;
        const inner = at(branch, 'Fn::Join', 1);
        return isList(inner) ? parts(inner) : [branch];
      });
    const text = parts(join[1])
      .map((part) => (typeof part === 'string' ? part : (refs.push(part), `"ref${refs.length}"`)))
      .join('')
      .replace(/""ref(\d+)""/g, '"ref$1"');
    const body: unknown = JSON.parse(text);
    const widgets = isRecord(body) && Array.isArray(body.widgets) ? body.widgets.filter(isRecord) : [];
    const expressions = JSON.stringify(widgets.filter((w) => w.type === 'metric'));
    expect(expressions).toContain(`{${METRICS_NAMESPACE},`);
    for (const name of Object.values(METRIC)) expect(expressions).toContain(`MetricName=\\"${name}\\"`);
    const alarmIds = Object.entries(resources)
      .filter(([, r]) => isRecord(r) && r.Type === 'AWS::CloudWatch::Alarm')
      .map(([id]) => id)
      .sort();
    expect(refs.filter((r) => isRecord(r) && 'Fn::GetAtt' in r).map((r) => (isRecord(r) && Array.isArray(r['Fn::GetAtt']) ? String(r['Fn::GetAtt'][0]) : '')).sort()).toEqual(alarmIds);
    expect(widgets.filter((w) => w.type === 'alarm')).toHaveLength(1);
  });

  it('sizes each function\'s memory to what it needs', () => {
    const memory = (id: string): unknown => resource(id).Properties.MemorySize;
    // Webhooks without media at the smallest size; WeChat and voice larger for a cold start
    // inside the vendor's window; the worker for a 25 MB media file (npm run bench -- memory).
    expect([memory('WhatsappLambdaFunction'), memory('TwilioMessagingLambdaFunction')]).toEqual([128, 128]);
    expect([memory('WechatLambdaFunction'), memory('TwilioVoiceLambdaFunction'), memory('WorkerLambdaFunction')]).toEqual([256, 256, 192]);
  });

  it('builds no network for a fixed egress IP unless asked', () => {
    const ec2 = Object.entries(resources).filter(([, r]) => isRecord(r) && typeof r.Type === 'string' && r.Type.startsWith('AWS::EC2::'));
    expect(ec2.length).toBeGreaterThan(0);
    for (const [id, r] of ec2) expect([id, obj(r, id).Condition]).toEqual([id, 'WeChatFixedIp']);
    expect(template.conditions.WeChatFixedIp).toEqual({ 'Fn::Or': [{ 'Fn::Equals': ['false', 'true'] }, { 'Fn::Equals': ['false', '1'] }] });
    expect(obj(template.outputs.WeChatEgressIp, 'WeChatEgressIp').Condition).toBe('WeChatFixedIp');
  });
});

describe(`serverless package --stage ${STAGE} --param wechatFixedIp=true --param alarmEmail=… --param workerMaxConcurrency=20 --param functionUrls=false`, () => {
  const outDir = mkdtempSync(join(tmpdir(), 'sls-package-options-'));
  const home = mkdtempSync(join(tmpdir(), 'sls-home-'));
  const workFolder = `.esbuild/infra-test-options-${process.pid}`;
  let template: Template;

  beforeAll(async () => {
    const run = await runPackage(outDir, home, workFolder, ['--param=wechatFixedIp=true', '--param=alarmEmail=ops@example.com', '--param=workerMaxConcurrency=20', '--param=functionUrls=false']);
    if (run.code !== 0) throw new Error(`serverless package failed (${run.code}):\n${run.output}`);
    template = readTemplate(outDir);
  }, 240_000);

  afterAll(() => {
    rmSync(outDir, { recursive: true, force: true });
    rmSync(home, { recursive: true, force: true });
    rmSync(join(ROOT, workFolder), { recursive: true, force: true });
    try {
      rmdirSync(join(ROOT, '.esbuild'));
    } catch {
      // in use by another build: leave it
    }
  });

  it('routes the worker through a NAT gateway with an Elastic IP, given as the WeChatEgressIp output', () => {
    expect(template.conditions.WeChatFixedIp).toEqual({ 'Fn::Or': [{ 'Fn::Equals': ['true', 'true'] }, { 'Fn::Equals': ['true', '1'] }] });
    const r = template.resources;
    expect(obj(obj(r.NatGateway, 'NatGateway').Properties, 'NatGateway.Properties').AllocationId).toEqual({ 'Fn::GetAtt': ['NatEip', 'AllocationId'] });
    expect(obj(obj(r.PrivateDefaultRoute, 'route').Properties, 'route.Properties').NatGatewayId).toEqual({ Ref: 'NatGateway' });
    expect(obj(template.outputs.WeChatEgressIp, 'WeChatEgressIp').Value).toEqual({ Ref: 'NatEip' });
    const vpcConfig = obj(obj(r.WorkerLambdaFunction, 'worker').Properties, 'worker.Properties').VpcConfig;
    expect(vpcConfig).toEqual({
      'Fn::If': ['WeChatFixedIp', { SecurityGroupIds: [{ Ref: 'WorkerSecurityGroup' }], SubnetIds: [{ Ref: 'PrivateSubnetA' }, { Ref: 'PrivateSubnetB' }] }, { Ref: 'AWS::NoValue' }],
    });
    // Lambda manages the worker's network interfaces only in that case.
    const workerRole = obj(obj(r.WorkerRole, 'WorkerRole').Properties, 'WorkerRole.Properties');
    expect(strings(workerRole.ManagedPolicyArns)).toEqual(['WeChatFixedIp', 'arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole', 'AWS::NoValue']);
  });

  it('caps the worker trigger at --param workerMaxConcurrency', () => {
    const mapping = Object.values(template.resources)
      .filter((r) => isRecord(r) && r.Type === 'AWS::Lambda::EventSourceMapping')
      .map((m) => obj(obj(m, 'mapping').Properties, 'mapping.Properties'))
      .find((p) => JSON.stringify(p.EventSourceArn) === JSON.stringify({ 'Fn::GetAtt': ['JobQueue', 'Arn'] }));
    expect(obj(mapping?.ScalingConfig, 'ScalingConfig').MaximumConcurrency).toEqual(20);
  });

  it('makes no function URL in a region without them, and no output or alarm that needs one', () => {
    // Function URLs are missing in some regions (https://docs.aws.amazon.com/lambda/latest/dg/urls-configuration.html).
    const r = template.resources;
    expect(Object.values(r).filter((x) => isRecord(x) && (x.Type === 'AWS::Lambda::Url' || (x.Type === 'AWS::Lambda::Permission' && JSON.stringify(x).includes('FunctionUrl'))))).toEqual([]);
    expect(template.conditions.FunctionUrls).toEqual({ 'Fn::Or': [{ 'Fn::Equals': ['false', 'true'] }, { 'Fn::Equals': ['false', '1'] }] });
    for (const output of ['WeChatWebhookUrl', 'WhatsAppWebhookUrl', 'TwilioMessagingWebhookUrl', 'TwilioVoiceWebhookUrl']) expect(obj(template.outputs[output], output).Condition).toBe('FunctionUrls');
    for (const alarm of ['WechatUrl5xxAlarm', 'WhatsappUrl5xxAlarm', 'TwilioMessagingUrl5xxAlarm', 'TwilioVoiceUrl5xxAlarm']) {
      expect(obj(r[alarm], alarm).Condition).toBe('FunctionUrls');
      // The dashboard names such an alarm only when it exists.
      expect(JSON.stringify(obj(r.Dashboard, 'Dashboard'))).toContain(JSON.stringify({ 'Fn::If': ['FunctionUrls', { 'Fn::Join': ['', ['","', { 'Fn::GetAtt': [alarm, 'Arn'] }]] }, ''] }));
    }
  });

  it('subscribes the alarm e-mail address to the topic', () => {
    expect(template.conditions.HasAlarmEmail).toEqual({ 'Fn::Not': [{ 'Fn::Equals': ['ops@example.com', ''] }] });
    const subscription = obj(template.resources.AlarmEmailSubscription, 'AlarmEmailSubscription');
    expect(subscription.Properties).toEqual({ TopicArn: { Ref: 'AlarmTopic' }, Protocol: 'email', Endpoint: 'ops@example.com' });
  });
});
