/**
 * The channel simulator end to end, as a developer uses it: `npm start` (local/start.ts
 * under tsx) with no channel configured and no API key, the page opened in a real headless
 * Chromium (Debian's `chromium`, driven by playwright-core), every message typed into the
 * Message field and sent with the Send button. The simulator plays WeChat, Meta and Twilio
 * against the real local stack: serverless offline's HTTP endpoints and the worker fed by SQS.
 *
 * WeChat's timing is real here (5 s per delivery, three deliveries), so the slow-answer case
 * takes about 25 s.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { freePort } from '../../../local/emulators';

const ROOT = resolve(__dirname, '..', '..', '..');

/** Debian's chromium (.ci/run installs it: `apt-get install -y chromium`). */
function chromiumPath(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('chromium is not installed: run `apt-get update && apt-get install -y chromium` (as .ci/run does)');
  }
}

function exitOf(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((done) => child.once('exit', () => done()));
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('channel simulator (local/simulator) in a browser against npm start', () => {
  let child: ChildProcess | undefined;
  let browser: Browser | undefined;
  let output = '';

  afterAll(async () => {
    await browser?.close();
    if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      process.kill(-child.pid, 'SIGINT');
      await exitOf(child);
    }
  });

  /** The user types `text` into Message and presses Send. */
  async function send(page: Page, text: string): Promise<void> {
    await page.getByRole('textbox', { name: 'Message' }).fill(text);
    await page.getByRole('button', { name: 'Send', exact: true }).click();
  }

  /** Waits until the conversation shows a bubble from the gateway containing `text`. */
  async function botSays(page: Page, text: string | RegExp, timeoutMs = 30_000): Promise<void> {
    await page.locator('.line.bot .bubble', { hasText: text }).first().waitFor({ state: 'visible', timeout: timeoutMs });
  }

  async function switchTo(page: Page, channel: 'WeChat' | 'WhatsApp' | 'SMS' | 'Voice', user: string): Promise<void> {
    await page.getByRole('radio', { name: channel }).check();
    const field = page.getByRole('textbox', { name: 'User' });
    await field.fill(user);
    await field.dispatchEvent('change');
    await page.locator('.who', { hasText: `${user} · ${channel}` }).waitFor();
  }

  it('answers on WeChat (fast and via "reply 1"), WhatsApp in parts, SMS and a voice call', async () => {
    const executablePath = chromiumPath();
    const [port, lambdaPort, simulatorPort] = [await freePort(), await freePort(), await freePort()];
    const env: Record<string, string> = {};
    for (const [key, value] of Object.entries(process.env)) {
      if (value !== undefined && !key.startsWith('AWS_') && !/^(WECHAT|WHATSAPP|TWILIO|OPENAI|DIFY)_/.test(key)) env[key] = value;
    }
    Object.assign(env, {
      PORT: String(port),
      LAMBDA_PORT: String(lambdaPort),
      SIMULATOR_PORT: String(simulatorPort),
      HOST: '127.0.0.1',
      LOCAL_DYNAMO_ENGINE: 'dynalite',
      // Explicit empty values win over a developer's .env: every channel is the simulator's.
      LLM_PROVIDER: '',
      OPENAI_API_KEY: '',
      DIFY_API_KEY: '',
      PUBLIC_BASE_URL: '',
      ALLOWED_USERS: '',
      WECHAT_TOKEN: '',
      WECHAT_APP_ID: '',
      WECHAT_APP_SECRET: '',
      WECHAT_ENCODING_AES_KEY: '',
      WECHAT_REPLY_MODE: '',
      WHATSAPP_VERIFY_TOKEN: '',
      WHATSAPP_APP_SECRET: '',
      WHATSAPP_ACCESS_TOKEN: '',
      WHATSAPP_PHONE_NUMBER_ID: '',
      TWILIO_ACCOUNT_SID: '',
      TWILIO_AUTH_TOKEN: '',
      TWILIO_FROM: '',
      TWILIO_MESSAGING_SERVICE_SID: '',
      // Meta's pair rate limit spaces parts 6 s apart; 1 s keeps the test short.
      WHATSAPP_PAIR_INTERVAL_MS: '1000',
      // The gateway answers a delivery 3.5 s after it arrived instead of 4.5 s: WeChat's 5 s stay
      // real, and a loaded machine gets 1.5 s rather than 0.5 s to carry the reply back.
      WECHAT_REPLY_WAIT_MS: '3500',
      WECHAT_DELIVERIES: '',
      WECHAT_FETCH_KEYWORD: '',
      DEV_LLM_SLOW_MS: '20000',
      DEV_LLM_CHUNK_DELAY_MS: '60',
      SIMULATOR: '',
    });
    child = spawn(process.execPath, [require.resolve('tsx/cli'), 'local/start.ts'], { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const running = child;
    const url = await waitFor('the Simulator line', 180_000, () => {
      if (running.exitCode !== null) throw new Error(`npm start exited early (${running.exitCode}):\n${output}`);
      return /^Simulator: (http:\/\/\S+)$/m.exec(output)?.[1];
    }).catch((err: unknown) => {
      throw new Error(`${String(err)}\n--- output ---\n${output}`);
    });
    expect(url).toBe(`http://127.0.0.1:${simulatorPort}/`);
    // Every channel simulated: /health, which sees only its own settings, still says ok.
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ status: 'ok', channels: { wechat: true, whatsapp: true, twilio: true } });

    browser = await chromium.launch({
      executablePath,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(url);
    await page.getByRole('status').filter({ hasText: 'channels: WeChat, WhatsApp, SMS, Voice' }).waitFor();

    // 1. WeChat: a question answered by the passive reply.
    await switchTo(page, 'WeChat', 'wei');
    await send(page, 'hello from the browser');
    await botSays(page, 'You said: hello from the browser');
    await page.locator('.timeline', { hasText: 'passive reply after' }).first().waitFor();
    //    The same in safe mode: encrypted both ways, and the gateway remembers the first turn.
    await page.getByRole('checkbox', { name: 'Safe mode (encrypted)' }).check();
    await send(page, 'and now encrypted');
    await botSays(page, 'You said: and now encrypted. (2 earlier turns remembered)');
    await page.locator('.timeline', { hasText: 'bytes, encrypted)' }).first().waitFor();
    await page.getByRole('checkbox', { name: 'Safe mode (encrypted)' }).uncheck();

    // 2. WeChat, slow answer: three deliveries time out at 5 s, the last one answers with the
    //    "reply 1" note, and the answer arrives when the user sends "1".
    await switchTo(page, 'WeChat', 'slow-wei');
    await send(page, 'think hard /dev-slow');
    await botSays(page, 'reply 1', 40_000);
    const timeline = page.locator('.line.user', { hasText: 'think hard /dev-slow' }).locator('.timeline');
    await timeline.filter({ hasText: 'delivery 2: no answer within 5 s' }).waitFor();
    await timeline.filter({ hasText: 'delivery 3: passive reply' }).waitFor();
    // The answer is ready 20 s after the question (DEV_LLM_SLOW_MS); each "1" waits up to 4.5 s for it.
    for (let attempt = 1; ; attempt++) {
      await send(page, '1');
      const answer = page.locator('.line.bot .bubble', { hasText: 'You said: think hard /dev-slow' });
      const stillThinking = page.locator('.line.bot .bubble', { hasText: 'reply 1' }).nth(attempt);
      await Promise.race([answer.waitFor({ timeout: 20_000 }), stillThinking.waitFor({ timeout: 20_000 })]);
      if (await answer.isVisible()) break;
      if (attempt >= 5) throw new Error('the slow answer never arrived through "1"');
    }

    // 3. WhatsApp: a long answer arrives in parts through Graph /messages, the question shows read.
    await switchTo(page, 'WhatsApp', 'wanda');
    await send(page, 'a long one please /dev-long');
    await botSays(page, 'Part 1 of 4.');
    await botSays(page, 'End of the long dev answer.');
    expect(await page.locator('.line.bot').count()).toBeGreaterThanOrEqual(2);
    await page.locator('.timeline', { hasText: 'Graph /messages text part 2' }).waitFor();
    await page.locator('.line.user .meta', { hasText: 'read' }).waitFor();
    //    A voice message: the worker downloads the sample through the Graph media stand-in.
    await page.getByRole('button', { name: 'Send voice' }).click();
    await botSays(page, 'You said: (voice message');
    //    Once the 24 h window is closed, Meta refuses free-form text and the template goes out.
    await page.getByRole('checkbox', { name: '24 h window closed' }).check();
    await send(page, 'are you still there?');
    await botSays(page, '[template "local_reengage"');

    // 4. SMS: answered through Twilio's Messages.json.
    await switchTo(page, 'SMS', 'sam');
    await send(page, 'hello by text');
    await botSays(page, 'You said: hello by text');
    await page.locator('.timeline', { hasText: 'Twilio Messages.json part 1' }).waitFor();

    // 5. Voice: the call is answered with the greeting, then the spoken answer.
    await switchTo(page, 'Voice', 'val');
    await send(page, 'what can you do');
    await botSays(page, 'How can I help you?');
    await botSays(page, 'You said: what can you do');
  }, 300_000);
});
