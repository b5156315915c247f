/**
 * The worker's side of WeChat. In `passive` mode the answer travels in the webhook
 * response (see ingress.ts), so the worker only stores it.
 */
import type { WeChatConfig } from '../../config';
import type { AdapterDeps, ChannelAdapter } from '../../core/channel';

/** Builds the WeChat adapter for the worker. */
export function createWeChatAdapter(cfg: WeChatConfig, _deps: AdapterDeps): ChannelAdapter {
  return {
    async deliver(): Promise<void> {
      // Passive replies are taken by the ingress (three deliveries, then "reply 1").
      if (cfg.replyMode === 'passive') return;
    },
  };
}
