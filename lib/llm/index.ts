/**
 * Picks the LLM backend named by the configuration.
 */
import type { LlmConfig } from '../config';
import { createDevBackend } from './dev';
import { createDifyBackend } from './dify';
import { createOpenAiBackend } from './openai';
import type { LlmBackend, LlmDeps } from './types';

export type { ChatTurn, CutReason, ImageInput, LlmBackend, LlmDeps, LlmEvent, LlmRequest, ToolDefinition } from './types';
export { LlmCallError, APOLOGY, CUT_CODES } from './retry';
export { createDevBackend } from './dev';
export { createDifyBackend } from './dify';
export { createOpenAiBackend } from './openai';

/**
 * Creates the backend for `cfg.provider`.
 * @throws Error when the provider's settings are missing (config validation normally prevents this).
 */
export function createLlmBackend(cfg: LlmConfig, deps: LlmDeps): LlmBackend {
  switch (cfg.provider) {
    case 'openai':
      if (!cfg.openai) throw new Error('LLM provider "openai" selected but OpenAI settings are missing');
      return createOpenAiBackend(cfg.openai, deps, { idleTimeoutMs: cfg.streamIdleTimeoutMs, maxTokens: cfg.maxTokens });
    case 'dify':
      if (!cfg.dify) throw new Error('LLM provider "dify" selected but Dify settings are missing');
      // Dify's chat-messages API takes no token cap: the app's model settings hold it.
      return createDifyBackend(cfg.dify, deps, { idleTimeoutMs: cfg.streamIdleTimeoutMs });
    case 'dev':
      return createDevBackend({ chunkDelayMs: cfg.devChunkDelayMs, slowMs: cfg.devSlowMs, sleep: (ms) => deps.sleep(ms) });
  }
}
