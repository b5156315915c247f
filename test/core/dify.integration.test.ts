/**
 * The Dify backend through the whole pipeline: Dify keeps the memory, we keep its
 * conversation id per user and send it back; /clear forgets it; a conversation Dify
 * no longer knows is forgotten and the question retried once.
 */
import { FAKE_DIFY_THOUGHT, startFakeDify, type FakeDify } from '../fakes/fake-dify';
import { WeChatPlatform } from '../../local/fakes/wechat-platform';
import { startGateway, type Gateway } from '../../local/gateway';

describe('Dify conversations through the pipeline', () => {
  let dify: FakeDify;
  let gw: Gateway;
  let platform: WeChatPlatform;

  beforeAll(async () => {
    dify = await startFakeDify({ mode: 'agent' });
    gw = await startGateway({
      env: { DIFY_API_KEY: 'app-test', DIFY_BASE_URL: dify.baseUrl, WECHAT_TOKEN: 't', WECHAT_REPLY_WAIT_MS: '1500' },
      wechat: { pollMs: 20, holdMs: 2150 },
    });
    platform = new WeChatPlatform({ url: `${gw.http.url}/wechat`, token: 't', windowMs: 2000 });
    await platform.send('o-warmup', 'warm up');
  });

  afterAll(async () => {
    await gw.stop();
    await dify.close();
  });

  it('reuses the conversation id Dify gave, and never shows agent thoughts', async () => {
    // Act
    const first = await platform.send('o-dify', 'hello dify');
    const second = await platform.send('o-dify', 'and again');
    // Assert
    const [r1, r2] = dify.chatRequests.slice(-2);
    expect(r1?.conversationId).toBe('');
    expect(r2?.conversationId).not.toBe('');
    expect(dify.conversations.get(r2?.conversationId ?? '')?.queries).toEqual(['hello dify', 'and again']);
    expect(r2?.user).toBe('wechat:o-dify');
    expect(first.reply).toBe('Echo: hello dify');
    expect(second.reply).not.toContain(FAKE_DIFY_THOUGHT);
  });

  it('forgets the Dify conversation on /clear', async () => {
    await platform.send('o-clear', 'first');
    const id = dify.chatRequests.at(-1)?.conversationId;
    const convId = [...dify.conversations.values()].find((c) => c.user === 'wechat:o-clear')?.id;
    await platform.send('o-clear', '/clear');
    await platform.send('o-clear', 'fresh start');
    expect(id).toBe('');
    expect(dify.deletedConversations).toContain(convId);
    expect(dify.chatRequests.at(-1)?.conversationId).toBe('');
  });

  it('starts over once when Dify no longer knows the stored conversation', async () => {
    // Arrange: a stored id Dify has lost (deleted on its side).
    await platform.send('o-lost', 'one');
    const convId = [...dify.conversations.values()].find((c) => c.user === 'wechat:o-lost')?.id ?? '';
    dify.conversations.delete(convId);
    const before = dify.chatCalls;
    // Act
    const outcome = await platform.send('o-lost', 'two');
    // Assert
    expect(outcome.reply).toBe('Echo: two');
    expect(dify.chatCalls - before).toBe(2);
    expect(dify.chatRequests.at(-1)?.conversationId).toBe('');
  });
});
