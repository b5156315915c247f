/**
 * `npm run dlq -- list|replay --stage <stage>`: inspect and replay the jobs the gateway
 * gave up on (lib/core/dead-letters.ts). Parked jobs live on their message records in the
 * table's `dead` index; messages still sitting in the SQS dead-letter queue (the
 * dead-letter function parks them within seconds) are counted.
 *
 * ```
 * npm run dlq -- list --stage prod
 * npm run dlq -- replay --stage prod --all
 * npm run dlq -- replay --stage prod --key wamid.HBgL... --key 24006...
 * ```
 * Against the local stack (`npm start`, stage `local`), pass the emulator endpoints the
 * banner prints: `--dynamodb-endpoint http://127.0.0.1:PORT --sqs-endpoint http://127.0.0.1:PORT`
 * (or set DYNAMODB_ENDPOINT / SQS_ENDPOINT). AWS credentials and region come from the
 * usual SDK chain (`AWS_PROFILE`, `AWS_REGION`) or `--region`.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetQueueAttributesCommand, GetQueueUrlCommand, SQSClient } from '@aws-sdk/client-sqs';
import { loadConfig, type AwsConfig, type Env } from '../lib/config';
import { listDeadLetters, replayParked } from '../lib/core/dead-letters';
import { systemClock, type Clock } from '../lib/types';
import { createDocumentClient } from '../lib/store/client';
import { MessageStore } from '../lib/store/messages';
import { useStandInCredentials } from '../local/resources';

const USAGE = `usage: npm run dlq -- list --stage <stage> [options]
       npm run dlq -- replay --stage <stage> (--all | --key <message key> ...) [options]
options: --region <region>  --dynamodb-endpoint <url>  --sqs-endpoint <url>  --service <name>`;

/** Parsed command line. */
export interface DlqArgs {
  command: 'list' | 'replay';
  stage: string;
  service: string | undefined;
  region: string | undefined;
  dynamoEndpoint: string | undefined;
  sqsEndpoint: string | undefined;
  all: boolean;
  keys: string[];
}

/** A command line that cannot be run; the message says why. */
export class UsageError extends Error {
  constructor(message: string) {
    super(`${message}\n${USAGE}`);
    this.name = 'UsageError';
  }
}

/** Parses `list|replay --stage <stage> ...`. */
export function parseDlqArgs(argv: readonly string[]): DlqArgs {
  const [command, ...rest] = argv;
  if (command !== 'list' && command !== 'replay') throw new UsageError(`unknown command "${command ?? ''}"`);
  const out: DlqArgs = { command, stage: '', service: undefined, region: undefined, dynamoEndpoint: undefined, sqsEndpoint: undefined, all: false, keys: [] };
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i];
    if (flag === '--all') {
      out.all = true;
      continue;
    }
    const value = rest[i + 1];
    if (value === undefined || value.startsWith('--')) throw new UsageError(`${flag ?? ''} needs a value`);
    i++;
    if (flag === '--stage') out.stage = value;
    else if (flag === '--service') out.service = value;
    else if (flag === '--region') out.region = value;
    else if (flag === '--dynamodb-endpoint') out.dynamoEndpoint = value;
    else if (flag === '--sqs-endpoint') out.sqsEndpoint = value;
    else if (flag === '--key') out.keys.push(value);
    else throw new UsageError(`unknown option ${flag ?? ''}`);
  }
  if (!/^[A-Za-z0-9-]+$/.test(out.stage)) throw new UsageError('--stage is required (letters, digits, dashes)');
  if (command === 'replay' && !out.all && out.keys.length === 0) throw new UsageError('replay needs --all or at least one --key');
  if (command === 'list' && (out.all || out.keys.length > 0)) throw new UsageError('list takes no --all or --key');
  return out;
}

/** The `service:` name in serverless.yml (resources are named `<service>-<stage>…`). */
function serviceName(): string {
  const match = /^service:\s*([A-Za-z0-9-]+)\s*$/m.exec(readFileSync(join(__dirname, '..', 'serverless.yml'), 'utf8'));
  if (!match?.[1]) throw new Error('serverless.yml has no service: line');
  return match[1];
}

function age(sec: number): string {
  if (sec < 120) return `${sec}s`;
  if (sec < 7_200) return `${Math.round(sec / 60)}m`;
  if (sec < 172_800) return `${Math.round(sec / 3_600)}h`;
  return `${Math.round(sec / 86_400)}d`;
}

/** Lines of a left-aligned table. */
function table(rows: readonly (readonly string[])[]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join('  '));
}

/** Overrides for tests. */
export interface DlqOptions {
  clock?: Clock;
}

/**
 * Runs the command; writes lines to `out`. Returns the process exit code: 0 done,
 * 1 a replay failed (the others were still tried), 2 bad usage or configuration.
 */
export async function runDlq(argv: readonly string[], env: Env, out: (line: string) => void, opts: DlqOptions = {}): Promise<number> {
  let args: DlqArgs;
  let aws: AwsConfig;
  try {
    args = parseDlqArgs(argv);
    const base = loadConfig(env).aws;
    const dynamoEndpoint = args.dynamoEndpoint ?? base.dynamoEndpoint;
    const sqsEndpoint = args.sqsEndpoint ?? base.sqsEndpoint;
    // The stand-ins take any keys; AWS gets the SDK's chain (profile, SSO, role).
    if (dynamoEndpoint !== '' || sqsEndpoint !== '') useStandInCredentials();
    aws = {
      ...base,
      region: args.region ?? base.region,
      tableName: `${args.service ?? serviceName()}-${args.stage}`,
      dynamoEndpoint,
      sqsEndpoint,
    };
  } catch (err) {
    out(err instanceof Error ? err.message : String(err));
    return 2;
  }
  const clock = opts.clock ?? systemClock;
  const messages = new MessageStore(createDocumentClient(aws), aws.tableName);
  const sqs = new SQSClient({
    region: aws.region,
    ...(aws.sqsEndpoint ? { endpoint: aws.sqsEndpoint } : {}),
  });
  try {
    const prefix = aws.tableName;
    if (args.command === 'list') {
      const dead = await listDeadLetters(messages, clock.nowMs());
      if (dead.length === 0) out(`no parked jobs in ${prefix}`);
      else {
        for (const line of table([['channel', 'message key', 'user', 'age', 'reason'], ...dead.map((d) => [d.channel, d.msgKey, d.user, age(d.ageSec), d.reason])])) out(line);
      }
      const dlqUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: `${prefix}-dlq.fifo` }))).QueueUrl;
      const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }));
      const waiting = Number(attrs.Attributes?.ApproximateNumberOfMessages ?? '0') + Number(attrs.Attributes?.ApproximateNumberOfMessagesNotVisible ?? '0');
      if (waiting > 0) out(`${waiting} message(s) in ${prefix}-dlq.fifo not parked yet (the deadLetter function parks them; check its logs if they stay)`);
      return 0;
    }
    const queueUrl = (await sqs.send(new GetQueueUrlCommand({ QueueName: `${prefix}-jobs.fifo` }))).QueueUrl;
    if (queueUrl === undefined) throw new Error(`queue ${prefix}-jobs.fifo not found`);
    const parked = await messages.listParked(clock.nowMs());
    const chosen = args.all ? parked : parked.filter((rec) => args.keys.includes(rec.msgKey));
    for (const key of args.keys) if (!parked.some((rec) => rec.msgKey === key)) out(`not parked: ${key}`);
    let failed = 0;
    for (const rec of chosen) {
      try {
        await replayParked({ messages, sqs, queueUrl, clock }, rec);
        out(`replayed ${rec.channel} ${rec.msgKey}`);
      } catch (err) {
        failed++;
        out(`could not replay ${rec.channel} ${rec.msgKey}: ${err instanceof Error ? err.message : String(err)} (still parked; run the replay again)`);
      }
    }
    out(`${chosen.length - failed} replayed, ${failed} failed`);
    return failed > 0 || args.keys.some((key) => !parked.some((rec) => rec.msgKey === key)) ? 1 : 0;
  } finally {
    sqs.destroy();
  }
}
