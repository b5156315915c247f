/**
 * Channel-neutral commands. They are answered by the worker in the user's message
 * order and never reach the LLM.
 */

/** A recognised command. */
export type Command = 'clear' | 'help';

/** Text listing the commands (also the default WeChat welcome). */
export const HELP_TEXT = [
  'Just send me a message and I will answer.',
  'Commands:',
  '/clear – forget our conversation and start fresh (also /reset)',
  '/help – show this list',
].join('\n');

/** Answer to /clear. */
export const CLEARED_TEXT = 'Done: I have forgotten our conversation. What would you like to talk about?';

/**
 * Recognises `/clear`, `/reset`, `/help` (case-insensitive, surrounding spaces ignored;
 * full-width `／` as typed by Chinese keyboards too). Anything else is a question.
 */
export function parseCommand(text: string): Command | undefined {
  const t = text.trim().replace(/^／/, '/').toLowerCase();
  if (t === '/clear' || t === '/reset') return 'clear';
  if (t === '/help') return 'help';
  return undefined;
}
