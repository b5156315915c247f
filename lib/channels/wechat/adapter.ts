/**
 * The worker's side of WeChat.
 *
 * - `passive` mode: the answer travels in the webhook responses (see ingress.ts), so the
 *   worker only stores it.
 * - `customer_service` mode (verified accounts): if the ingress did not answer passively
 *   within its short wait, the worker pushes the answer with `custom/send`, in at most 5
 *   messages per user message (the 48 h quota since 2023-06: 5 messages per user message,
 *   https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html), merging chunks into
 *   pages of ≤ 2,000 UTF-8 bytes. Exactly one path
 *   delivers: the push claims the delivery with a conditional write, and only after the
 *   ingress's wait is over. On 45015 / 45047 / 48001 (or any other refusal) the answer
 *   stays pending for "reply 1" and the user is told on their next message.
 * - Media (voice without Recognition, images) is downloaded with `media/get` when the
 *   AppID/AppSecret are set; AMR voice is transcoded to WAV for the transcription API.
 */
import type { WeChatConfig } from '../../config';
import { AudioDecodeError } from '../../audio/amr';
import { DeliveryError, type AdapterDeps, type ChannelAdapter, type Media } from '../../core/channel';
import { sendOutbound, type SendVerdict } from '../../core/outbound';
import type { Job } from '../../types';
import type { MessageRecord } from '../../store/messages';
import type { TokenStore } from '../../store/wechat-token';
import { WeChatApi, WeChatApiError } from './api';
import type { DeliveryStore } from './delivery';
import { fetchWeChatMedia } from './media';
import { takePage, utf8Length } from './pages';
import { WECHAT_PROGRESS_TIMING, wechatProgressPolicy, type WeChatProgressTiming } from './progress';
import { moreNote } from './texts';
import { AccessTokenProvider, WeChatTokenError } from './token';

/** WeChat's quota: customer-service messages per user message (https://developers.weixin.qq.com/doc/offiaccount/Message_Management/Service_Center_messages.html). */
export const CS_MESSAGES_PER_USER_MESSAGE = 5;

/** Errors after which the push is abandoned and the answer kept for "reply 1". */
export const CS_FALLBACK_CODES: readonly number[] = [45015, 45047, 48001];

/** One customer-service message: its text and the answer's characters it carries. */
interface PushPage {
  text: string;
  fromChar: number;
  nextChar: number;
}

/** The WeChat adapter's storage, injected by the composition root (functions/compose.ts). */
export interface WeChatAdapterStores {
  /** The fleet-wide access token's cache and refresh lease. */
  tokens: TokenStore;
  /** The delivery state of WeChat answers (claims, pushes, failures). */
  delivery: DeliveryStore;
}

/** The adapter's timings (the ingress's wait is `WeChatConfig.csPassiveWaitMs`). */
export interface WeChatAdapterTiming {
  /** Extra margin after the ingress's wait before the push claims the delivery. */
  handOverMarginMs: number;
  /** When a streaming answer is written (progress.ts; production defaults where unset). */
  progress?: Partial<WeChatProgressTiming>;
}

/** Builds the WeChat adapter for the worker. */
export function createWeChatAdapter(
  cfg: WeChatConfig,
  deps: AdapterDeps,
  stores: WeChatAdapterStores,
  timing: WeChatAdapterTiming = { handOverMarginMs: 1_000 },
): ChannelAdapter {
  const api =
    cfg.appId !== '' && cfg.appSecret !== ''
      ? new WeChatApi({
          apiBase: cfg.apiBase,
          fetch: deps.fetch,
          log: deps.log,
          tokens: new AccessTokenProvider({
            appId: cfg.appId,
            appSecret: cfg.appSecret,
            apiBase: cfg.apiBase,
            store: stores.tokens,
            fetch: deps.fetch,
            clock: deps.clock,
            log: deps.log,
          }),
        })
      : undefined;
  const { delivery } = stores;

  async function fetchMedia(job: Job, mediaRef: string): Promise<Media> {
    if (!api) throw new DeliveryError('media needs WECHAT_APP_ID and WECHAT_APP_SECRET', 'no_api', false);
    try {
      return await fetchWeChatMedia(api, mediaRef, job.input.kind === 'audio' ? 'audio' : 'image');
    } catch (err) {
      if (err instanceof AudioDecodeError) throw new DeliveryError(`voice could not be decoded: ${err.code}`, err.code, false);
      if (err instanceof WeChatApiError) throw new DeliveryError(`media/get failed: ${err.errcode ?? err.status ?? ''}`, 'media_get', err.retryable);
      if (err instanceof WeChatTokenError) throw new DeliveryError(`access token: ${err.code}`, err.code, err.retryable);
      throw err;
    }
  }

  async function push(record: MessageRecord, wechatApi: WeChatApi): Promise<void> {
    const now = (): number => deps.clock.nowMs();
    // Let the ingress finish its passive wait first; then exactly one path claims delivery.
    const handOverAt = record.arrivedAtMs + cfg.csPassiveWaitMs + timing.handOverMarginMs;
    if (handOverAt > now()) await deps.clock.sleep(handOverAt - now());
    const stored = await deps.messages.get(record, now());
    if (!stored?.pending) return;
    let rec: MessageRecord = stored;
    if (rec.deliveryOwner === undefined) {
      if (!(await delivery.claimDelivery(rec, 'push', now()))) return;
    } else if (rec.deliveryOwner !== 'push') {
      return;
    }
    await wechatApi.typing(rec.userId, 'CancelTyping').catch(() => false);
    // Resume after the parts already sent (SQS redelivery after a failure). The pages are cut
    // from the stored record, re-read after each push: `progress.lost` once the record is gone or no
    // longer ours (the conditional write failed), or the push was refused.
    const progress = { lost: false };
    let sent: PushPage | undefined;
    const nextPage = (): PushPage | undefined => {
      if (progress.lost || !rec.pending || rec.deliveredParts >= CS_MESSAGES_PER_USER_MESSAGE || rec.deliveredChars >= rec.answer.length) return undefined;
      const from = rec.deliveredChars;
      const lastAllowed = rec.deliveredParts === CS_MESSAGES_PER_USER_MESSAGE - 1;
      const rest = rec.answer.slice(from);
      const fits = utf8Length(rest) <= cfg.pageBytes;
      // The fifth message ends with "reply 1" when the answer is longer still.
      const note = fits ? '' : lastAllowed ? moreNote(cfg.fetchKeyword) : '';
      const page = fits ? { page: rest, nextChar: rec.answer.length } : takePage(rec.answer, from, cfg.pageBytes - utf8Length(note), { final: true });
      return { text: page.page + note, fromChar: from, nextChar: page.nextChar };
    };
    await sendOutbound<PushPage>(
      {
        part: nextPage,
        send: async (page) => {
          await wechatApi.sendText(rec.userId, page.text);
          sent = page;
        },
        classify: (err): SendVerdict | undefined => {
          if (err instanceof WeChatApiError && !err.retryable) {
            // 45015 / 45047 / 48001 and other refusals: keep the answer for "reply 1".
            const code = String(err.errcode ?? err.status ?? 'refused');
            deps.log.warn('wechat customer-service push refused; answer kept for reply 1', { errcode: code, known: CS_FALLBACK_CODES.includes(err.errcode ?? 0) });
            return { kind: 'fatal', note: { kind: 'push_failed', code, told: false } };
          }
          if (err instanceof WeChatApiError || err instanceof WeChatTokenError) {
            return { kind: 'retry', error: new DeliveryError(`custom/send failed: ${err.message}`, 'push_retry', err.retryable) };
          }
          return undefined;
        },
        // `done` is not used: whether the answer is complete follows from the page just pushed.
        record: async (_delivered, _done, note) => {
          progress.lost = true;
          if (note?.kind === 'push_failed') {
            await delivery.markPushFailed(rec, note.code, now());
            return;
          }
          if (sent === undefined) return;
          const complete = sent.nextChar >= rec.answer.length;
          if (!(await delivery.markPushed(rec, sent.fromChar, sent.nextChar, complete, now()))) return;
          const next = await deps.messages.get(rec, now());
          if (!next) return;
          rec = next;
          progress.lost = false;
        },
      },
      rec.deliveredParts,
    );
    if (progress.lost) return;
    if (rec.pending && rec.deliveredChars < rec.answer.length) {
      // Quota used up (5 messages): the rest is fetched with "reply 1", as the last message says.
      await delivery.markPushQuota(rec, now());
    }
  }

  return {
    // A held passive delivery (or a "1") shows the part of the answer generated so far.
    progress: wechatProgressPolicy(cfg, { ...WECHAT_PROGRESS_TIMING, ...timing.progress }),
    async onJobStart(job: Job): Promise<void> {
      // The typing indicator only exists for the customer-service API.
      if (cfg.replyMode !== 'customer_service' || !api) return;
      await api.typing(job.userId, 'Typing').catch((err: unknown) => {
        deps.log.debug('typing indicator not shown', { error: err instanceof Error ? err.message : String(err) });
      });
    },
    ...(api ? { fetchMedia } : {}),
    async deliver(record: MessageRecord): Promise<void> {
      // Passive replies are taken by the ingress (three deliveries, then "reply 1").
      if (cfg.replyMode === 'passive' || !api) return;
      await push(record, api);
    },
  };
}
