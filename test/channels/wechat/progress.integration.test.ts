/**
 * The worker's WeChat progress pacing end to end (lib/channels/wechat/progress.ts), on a
 * scaled clock: a 2 s window stands for WeChat's 5 s, so its retries are 2 s apart and the
 * last delivery answers 2 × 2 s + 1.5 s after the first. The worker writes a streaming answer
 * only where a reader can use it, and the last delivery still shows what has streamed.
 */
import { startFakeOpenAi, type FakeOpenAi } from '../../fakes/fake-openai';
import { WeChatPlatform, nextMsgId } from '../../../local/fakes/wechat-platform';
import { startGateway, type Gateway } from '../../../local/gateway';

const TOKEN = 'testtoken';
const WINDOW_MS = 2000;

describe('WeChat progress writes', () => {
  let llm: FakeOpenAi;
  let gw: Gateway;
  let platform: WeChatPlatform;

  beforeAll(async () => {
    llm = await startFakeOpenAi();
    gw = await startGateway({
      env: { OPENAI_API_KEY: 'sk-test', OPENAI_BASE_URL: llm.baseUrl, WECHAT_TOKEN: TOKEN, WECHAT_REPLY_WAIT_MS: '1500', WECHAT_PAGE_BYTES: '2000' },
      wechat: { pollMs: 20, holdMs: WINDOW_MS + 150 },
      // The production policy with WeChat's timings scaled by 2/5.
      worker: { wechatTiming: { handOverMarginMs: 400, progress: { retryIntervalMs: WINDOW_MS, nearDeadlineMs: 800, slackMs: 400, idleMs: 1200 } } },
    });
    platform = new WeChatPlatform({ url: `${gw.http.url}/wechat`, token: TOKEN, windowMs: WINDOW_MS });
    await platform.send('o-warmup', 'warm up');
  });

  afterAll(async () => {
    await gw.stop();
    await llm.close();
  });

  /** Sends a message and records every answer the record held while it streamed. */
  async function sendAndWatch(user: string, text: string): Promise<{ reply: string | undefined; deliveries: number; partials: string[] }> {
    const msgId = nextMsgId();
    const partials = new Set<string>();
    const watching = { on: true };
    const watch = (async () => {
      while (watching.on) {
        const rec = await gw.messages.get({ channel: 'wechat', userId: user, msgKey: msgId }, Date.now());
        if (rec?.status === 'streaming') partials.add(rec.answer);
        await new Promise((resolve) => setTimeout(resolve, 15));
      }
    })();
    const outcome = await platform.send(user, text, msgId);
    watching.on = false;
    await watch;
    return { reply: outcome.reply, deliveries: outcome.deliveries, partials: [...partials] };
  }

  it('writes nothing while a short answer streams early in the window, and answers it whole', async () => {
    // Arrange: ~120 characters in 4-character chunks 30 ms apart (about 0.9 s of streaming).
    const answer = 'A short answer that streams in small pieces, well under a quarter of a WeChat page, early on.';
    llm.chunkChars = 4;
    llm.chunkDelayMs = 30;
    llm.latencyMs = 0;
    llm.answer = () => answer;
    // Act
    const seen = await sendAndWatch('o-short', 'short please');
    // Assert: seen streaming only with nothing written; the first delivery carried it all.
    expect(seen.partials).toEqual(['']);
    expect(seen.reply).toBe(answer);
    expect(seen.deliveries).toBe(1);
  });

  it('writes near the last deadline, so the last delivery shows what has streamed and the rest waits for "1"', async () => {
    // Arrange: the answer starts streaming in the third window and outlasts it.
    const answer = Array.from({ length: 80 }, (_, i) => `Sentence ${i + 1} of a long answer.`).join(' ');
    llm.chunkChars = 12;
    llm.chunkDelayMs = 40;
    llm.latencyMs = 2 * WINDOW_MS + 300;
    llm.answer = () => answer;
    // Act
    const seen = await sendAndWatch('o-long', 'long please');
    // Assert: the last delivery showed a partial answer (with the note to send "1"), taken from
    // a write made near its deadline, not from the stream's start.
    expect(seen.deliveries).toBe(3);
    expect(seen.reply).toMatch(/^Sentence 1 of a long answer\./);
    expect(seen.reply).not.toContain(answer);
    expect(seen.partials.filter((p) => p !== '').length).toBeGreaterThan(0);
  });
});
