/**
 * `npm run dlq` against the embedded DynamoDB (dynalite) and SQS (fauxqs): the test stack
 * names its resources `llm-gateway-<id>…`, i.e. stage `<id>` of the service.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { SendMessageCommand } from '@aws-sdk/client-sqs';
import { loadConfig } from '../../lib/config';
import { parkJob } from '../../lib/core/dead-letters';
import { silentLog, type Job } from '../../lib/types';
import { asciiJson, deduplicationId, messageGroupId, parseJob } from '../../lib/queue/jobs';
import { createDocumentClient } from '../../lib/store/client';
import { MessageStore } from '../../lib/store/messages';
import { parseDlqArgs, runDlq, UsageError } from '../../scripts/dlq-command';
import { startFaultProxy } from '../../local/fault-proxy';
import { startTestStack, type TestStack } from '../../local/stack';

const ROOT = join(__dirname, '..', '..');

function job(userId: string, msgKey: string, text: string): Job {
  return {
    v: 1,
    channel: 'twilio',
    userId,
    msgKey,
    conversationKey: `twilio#${userId}`,
    input: { kind: 'text', text },
    reply: { channel: 'twilio', to: userId, from: '+15550009999', medium: 'sms', callSid: '' },
    arrivedAtMs: Date.now() - 3_600_000,
  };
}

describe('parseDlqArgs', () => {
  it.each([
    [['drop', '--stage', 'prod'], /unknown command/],
    [['list'], /--stage is required/],
    [['list', '--stage', 'prod', '--all'], /list takes no/],
    [['replay', '--stage', 'prod'], /--all or at least one --key/],
    [['replay', '--stage', 'prod', '--key'], /--key needs a value/],
    [['list', '--stage', 'pr od'], /--stage is required/],
  ])('refuses %j', (argv, pattern) => {
    expect(() => parseDlqArgs(argv)).toThrow(UsageError);
    expect(() => parseDlqArgs(argv)).toThrow(pattern);
  });

  it('reads keys, endpoints and the stage', () => {
    expect(parseDlqArgs(['replay', '--stage', 'local', '--key', 'a', '--key', 'b', '--sqs-endpoint', 'http://127.0.0.1:1'])).toMatchObject({
      command: 'replay',
      stage: 'local',
      keys: ['a', 'b'],
      sqsEndpoint: 'http://127.0.0.1:1',
    });
  });
});

describe('npm run dlq on the local stand-ins', () => {
  let stack: TestStack;
  let messages: MessageStore;
  let stage: string;
  let endpoints: string[];
  const first = job('+15550301111', 'SMdlq0000000000000000000000000001', 'first question');
  const second = job('+15550302222', 'SMdlq0000000000000000000000000002', 'second question');

  async function run(...argv: string[]): Promise<{ code: number; lines: string[] }> {
    const lines: string[] = [];
    const code = await runDlq([...argv, '--stage', stage, ...endpoints], {}, (line) => lines.push(line));
    return { code, lines };
  }

  beforeAll(async () => {
    stack = await startTestStack();
    const cfg = loadConfig(stack.env);
    messages = new MessageStore(createDocumentClient(cfg.aws), cfg.aws.tableName);
    stage = stack.tableName.slice('llm-gateway-'.length);
    endpoints = ['--dynamodb-endpoint', stack.dynamoEndpoint, '--sqs-endpoint', stack.sqsEndpoint];
    const deps = { messages, channels: {}, clock: { nowMs: () => Date.now(), sleep: () => Promise.resolve() }, log: silentLog, streamLeaseMs: 1_000 };
    for (const j of [first, second]) {
      await messages.claim(j, j.arrivedAtMs);
      await parkJob(deps, j, 'DeliveryError: Twilio answered HTTP 500');
    }
    // One job SQS moved to the DLQ that the dead-letter function has not parked yet.
    const stray = job('+15550303333', 'SMdlq0000000000000000000000000003', 'stray');
    await stack.sqs.send(
      new SendMessageCommand({ QueueUrl: stack.deadLetterQueueUrl, MessageBody: asciiJson(stray), MessageGroupId: messageGroupId(stray), MessageDeduplicationId: deduplicationId(stray) }),
    );
  });

  afterAll(async () => {
    await stack.stop();
  });

  it('lists parked jobs with key, channel, masked user, age and reason, and counts unparked dead letters', async () => {
    const { code, lines } = await run('list');
    expect(code).toBe(0);
    const text = lines.join('\n');
    expect(lines[0]).toMatch(/^channel\s+message key\s+user\s+age\s+reason$/);
    expect(text).toMatch(new RegExp(`twilio\\s+${first.msgKey}\\s+\\*+1111\\s+60m\\s+DeliveryError: Twilio answered HTTP 500`));
    expect(text).toContain(second.msgKey);
    expect(text).not.toContain(first.userId);
    expect(text).toMatch(/1 message\(s\) in llm-gateway-.*-dlq\.fifo not parked yet/);
  });

  it('works as the npm script (tsx entry)', async () => {
    const { stdout } = await promisify(execFile)(join(ROOT, 'node_modules', '.bin', 'tsx'), ['scripts/dlq.ts', 'list', '--stage', stage, ...endpoints], {
      cwd: ROOT,
      env: { ...process.env, DYNAMODB_ENDPOINT: '', SQS_ENDPOINT: '' },
    });
    expect(stdout).toContain(first.msgKey);
  });

  it('keeps a job parked when the replay cannot reach the queue, and says so', async () => {
    // Arrange: SQS refuses every send.
    const proxy = await startFaultProxy(stack.sqsEndpoint);
    proxy.inject('SendMessage', { kind: 'fail' });
    const lines: string[] = [];
    try {
      // Act
      const code = await runDlq(['replay', '--stage', stage, '--key', first.msgKey, '--dynamodb-endpoint', stack.dynamoEndpoint, '--sqs-endpoint', proxy.url], {}, (l) => lines.push(l));
      // Assert
      expect(code).toBe(1);
    } finally {
      await proxy.close();
    }
    expect(lines.join('\n')).toMatch(/could not replay twilio SMdlq\d+1: .*still parked/);
    expect((await messages.listParked(Date.now())).map((r) => r.msgKey)).toContain(first.msgKey);
  });

  it('replays one job: back on the queue with a fresh deduplication id, the record answerable, the rest still parked', async () => {
    // Act
    const { code, lines } = await run('replay', '--key', first.msgKey, '--key', 'SMnotparked');
    // Assert
    expect(lines).toContain(`replayed twilio ${first.msgKey}`);
    expect(lines).toContain('not parked: SMnotparked');
    expect(code).toBe(1);
    const sent = await stack.receiveAll(stack.queueUrl);
    expect(sent).toHaveLength(1);
    const replayed = parseJob(sent[0]?.Body ?? '');
    expect(replayed).toMatchObject({ msgKey: first.msgKey, input: { kind: 'text', text: 'first question' } });
    expect(replayed.replayedAtMs).toBeGreaterThan(first.arrivedAtMs);
    expect(sent[0]?.Attributes?.MessageDeduplicationId).not.toBe(deduplicationId(first));
    expect(await messages.get(first, Date.now())).toMatchObject({ status: 'queued', answer: '', pending: true, parked: false, enqueued: true, failure: '' });
    expect((await messages.listParked(Date.now())).map((r) => r.msgKey)).toEqual([second.msgKey]);
  });

  it('replays everything with --all', async () => {
    const { code, lines } = await run('replay', '--all');
    expect(code).toBe(0);
    expect(lines).toEqual([`replayed twilio ${second.msgKey}`, '1 replayed, 0 failed']);
    expect(await stack.receiveAll(stack.queueUrl)).toHaveLength(1);
    expect((await run('list')).lines[0]).toMatch(/^no parked jobs/);
  });
});
