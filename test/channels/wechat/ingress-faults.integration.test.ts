/**
 * Fault injection at the WeChat ingress: its DynamoDB or SQS client fails the first N
 * matching calls. WeChat retries a request only when no answer arrives within 5 s (a 5xx
 * is shown to the user as an error and not retried), so the ingress must answer nothing
 * in time, and the redelivery must complete the work: one LLM call, nothing lost.
 */
import type { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AppConfig } from '../../../lib/config';
import { webhookHandler } from '../../../lib/channels/http';
import { createWeChatIngressDeps, handleWeChat, secureRandom } from '../../../lib/channels/wechat/ingress';
import { silentLog, systemClock, type Job } from '../../../lib/types';
import { createSqsClient, SqsJobQueue, type JobQueue } from '../../../lib/queue/jobs';
import { createDocumentClient } from '../../../lib/store/client';
import { startFakeOpenAi, type FakeOpenAi } from '../../fakes/fake-openai';
import { WeChatPlatform } from '../../../local/fakes/wechat-platform';
import { startGateway, type Gateway } from '../../../local/gateway';

const TOKEN = 'faulttoken';
/** Scaled WeChat timing: a 2 s window stands for 5 s. */
const WINDOW_MS = 2000;

/** Which calls fail next: `count` calls whose command matches `match`. */
interface Fault {
  count: number;
  match: (command: string, input: unknown) => boolean;
}

/** An error as the SDK raises it when DynamoDB or SQS is unreachable or throttles. */
function injected(): Error {
  const err = new Error('injected fault');
  err.name = 'ServiceUnavailable';
  return err;
}

/** Adds a middleware that fails the calls the current fault matches. */
function faulty(db: DynamoDBDocumentClient, fault: { current: Fault | undefined }): DynamoDBDocumentClient {
  db.middlewareStack.add(
    (next, context) => async (args) => {
      const f = fault.current;
      if (f && f.count > 0 && f.match(context.commandName ?? '', args.input)) {
        f.count -= 1;
        throw injected();
      }
      return next(args);
    },
    { step: 'initialize', name: 'injectFaults' },
  );
  return db;
}

/** Whether an UpdateItem writes the reply a request was served (whatever its placeholders). */
function writesServedReply(input: unknown): boolean {
  return /"servedText"|servedText =|"servedFor#/.test(JSON.stringify(input));
}

describe('WeChat ingress under DynamoDB and SQS faults', () => {
  let llm: FakeOpenAi;
  let gw: Gateway;
  let platform: WeChatPlatform;
  const dbFault: { current: Fault | undefined } = { current: undefined };
  let sqsFailures = 0;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    gw = await startGateway({
      env: { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: llm.baseUrl, WECHAT_TOKEN: TOKEN, WECHAT_REPLY_WAIT_MS: '1500' },
      // The real handler over deps whose clients fail on demand (the route replaces the default one).
      routes: (cfg: AppConfig) => {
        const wechat = cfg.wechat;
        if (!wechat) throw new Error('WeChat is not configured');
        const sqs = new SqsJobQueue(createSqsClient(cfg.aws), cfg.aws.queueUrl);
        const queue: JobQueue = {
          async enqueue(job: Job): Promise<void> {
            if (sqsFailures > 0) {
              sqsFailures -= 1;
              throw injected();
            }
            await sqs.enqueue(job);
          },
        };
        const deps = createWeChatIngressDeps(cfg, wechat, {
          db: faulty(createDocumentClient(cfg.aws), dbFault),
          queue,
          clock: systemClock,
          log: silentLog,
          random: secureRandom,
          pollMs: 20,
          holdMs: WINDOW_MS + 150,
        });
        return { '/wechat': webhookHandler('wechat', deps, silentLog, systemClock, handleWeChat) };
      },
    });
    platform = new WeChatPlatform({ url: `${gw.http.url}/wechat`, token: TOKEN, windowMs: WINDOW_MS });
    await platform.send('o-warmup', 'warm up');
  });

  afterAll(async () => {
    await gw.stop();
    await llm.close();
  });

  beforeEach(() => {
    dbFault.current = undefined;
    sqsFailures = 0;
    llm.answer = (req) => `Echo: ${req.lastUserText}`;
  });

  it('answers nothing in time when SQS fails, and the redelivery enqueues and answers once', async () => {
    // Arrange
    sqsFailures = 1;
    const before = llm.chatCalls;
    // Act
    const outcome = await platform.send('o-sqs', 'queue is down');
    await gw.idle();
    // Assert
    expect(outcome.statuses[0]).toBeUndefined();
    expect(outcome.deliveries).toBe(2);
    expect(outcome.reply).toBe('Echo: queue is down');
    expect(llm.chatCalls - before).toBe(1);
    expect(sqsFailures).toBe(0);
  });

  it('answers nothing in time when the claim cannot be written, and the redelivery answers once', async () => {
    // Arrange: the first PutItem of the message record fails.
    dbFault.current = { count: 1, match: (command, input) => command === 'PutItemCommand' && JSON.stringify(input).includes('"sk":"msg#') };
    const before = llm.chatCalls;
    // Act
    const outcome = await platform.send('o-dynamo', 'table is down');
    await gw.idle();
    // Assert
    expect(dbFault.current.count).toBe(0);
    expect(outcome.statuses[0]).toBeUndefined();
    expect(outcome.reply).toBe('Echo: table is down');
    expect(llm.chatCalls - before).toBe(1);
  });

  it('does not lose a page when the write that records it fails: the redelivery shows it', async () => {
    // Arrange: the answer is ready quickly; the first write of a served page fails.
    llm.answer = () => 'An answer that must be seen exactly once.';
    dbFault.current = { count: 1, match: (command, input) => command === 'UpdateItemCommand' && writesServedReply(input) };
    // Act
    const outcome = await platform.send('o-page', 'show me');
    await gw.idle();
    const after = await gw.messages.listPending('wechat', 'o-page', Date.now());
    // Assert
    expect(dbFault.current.count).toBe(0);
    expect(outcome.statuses[0]).toBeUndefined();
    expect(outcome.reply).toBe('An answer that must be seen exactly once.');
    expect(after).toEqual([]);
  });

  it('does not lose a message when the signature binding cannot be stored', async () => {
    dbFault.current = { count: 1, match: (command, input) => command === 'PutItemCommand' && JSON.stringify(input).includes('wxsig#') };
    const before = llm.chatCalls;
    const outcome = await platform.send('o-bind', 'binding is down');
    await gw.idle();
    expect(dbFault.current.count).toBe(0);
    expect(outcome.statuses[0]).toBeUndefined();
    expect(outcome.reply).toBe('Echo: binding is down');
    expect(llm.chatCalls - before).toBe(1);
  });
});
