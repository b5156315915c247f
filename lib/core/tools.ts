/**
 * Tools the model may call (openai backend only; see lib/llm/openai.ts), kept in a
 * small registry so more can be added: each entry is a factory that builds the tool for
 * one job (so a tool knows who is asking) or declines for that job.
 *
 * Tool results are plain text handed back to the model; a tool never throws for bad
 * arguments (the model gets an `Error: …` it can explain to the user).
 *
 * @module
 */
import type { ToolDefinition } from '../llm/types';
import { normalizeName, normalizePhone, type ContactStore } from '../store/contacts';
import type { Clock, Job, Log } from '../types';
import { isJsonObject } from '../json';

/** What the built-in tools need. */
export interface ToolDeps {
  contacts: Pick<ContactStore, 'save'>;
  clock: Clock;
  log: Log;
}

/** Builds a tool for one job, or undefined when it does not apply to it. */
export type ToolFactory = (job: Job, deps: ToolDeps) => ToolDefinition | undefined;

/** Parses a tool's arguments JSON into an object; undefined when it is not one. */
export function parseToolArguments(argumentsJson: string): Record<string, unknown> | undefined {
  try {
    const parsed: unknown = JSON.parse(argumentsJson === '' ? '{}' : argumentsJson);
    return isJsonObject(parsed) ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The default number of the person talking: the caller's / texter's number on Twilio
 * (the user id is the bare number), and the user id elsewhere (the `wa_id` on WhatsApp,
 * digits without `+`; on WeChat an OpenID, which is not a number and so needs `phone`).
 */
function callerNumber(job: Job): string {
  if (job.channel === 'whatsapp' && /^\d+$/.test(job.userId)) return `+${job.userId}`;
  return job.userId;
}

/**
 * A phone call whose caller ID Twilio did not verify (anything but SHAKEN/STIR
 * attestation A, https://www.twilio.com/docs/voice/trusted-calling-with-shakenstir): the
 * number may be spoofed, so the call may not change a registration.
 */
function unverifiedCall(job: Job): boolean {
  return job.reply.channel === 'twilio' && job.reply.medium === 'voice' && job.reply.callerVerified !== true;
}

/** Told when an unverified call tries to change an existing registration. */
export const UNVERIFIED_CALLER_ERROR =
  'Error: that number is already registered, and a registration cannot be changed from a call whose caller ID is not verified. ' +
  'Ask the user to send a text message (SMS or WhatsApp) from that number instead.';

/**
 * `save_contact(name, phone?)`: registers the person talking (or the number they give)
 * in the contact directory, like the sign-up form of the phone-bot tutorial, but by
 * conversation.
 */
export const saveContactTool: ToolFactory = (job, deps) => ({
  name: 'save_contact',
  description:
    'Registers a person in the contact list (sign-up). Call this only when the user asks to register, sign up or be added, ' +
    'after you know their name. The phone number defaults to the number the user is calling or texting from; pass `phone` only ' +
    'when they give a different number.',
  parameters: {
    type: 'object',
    properties: {
      name: { type: 'string', description: "The person's name as they said it." },
      phone: { type: 'string', description: 'Phone number in international format, e.g. +15551234567. Omit to use the caller’s own number.' },
    },
    required: ['name'],
    additionalProperties: false,
  },
  async run(argumentsJson: string): Promise<string> {
    const args = parseToolArguments(argumentsJson);
    if (!args) return 'Error: the arguments must be a JSON object like {"name": "Ada"}.';
    const name = typeof args.name === 'string' ? normalizeName(args.name) : '';
    if (name === '') return 'Error: a name is required. Ask the user for their name.';
    const rawPhone = typeof args.phone === 'string' && args.phone.trim() !== '' ? args.phone : callerNumber(job);
    const phone = normalizePhone(rawPhone);
    if (phone === undefined) {
      return 'Error: no valid phone number. Ask the user for their number in international format (with the country code).';
    }
    // Someone may register another number, but not rename a contact somebody else registered.
    // A call from a caller ID that may be spoofed may only create, never change, a contact.
    const own = normalizePhone(callerNumber(job)) === phone;
    const createOnly = unverifiedCall(job);
    const contact = await deps.contacts.save({ phone, name, channel: job.channel, registeredBy: job.userId }, deps.clock.nowMs(), {
      overwriteOthers: own && !createOnly,
      createOnly,
    });
    if (!contact && createOnly) return UNVERIFIED_CALLER_ERROR;
    if (!contact) return 'Error: that number is already registered by someone else. Ask the user to register from that phone.';
    deps.log.info('contact saved', { channel: job.channel, phoneSuffix: phone.slice(-4) });
    return `Saved: ${contact.name}, ${contact.phone}. Confirm the registration to the user.`;
  },
});

/** The tools every job is offered by default. */
export const DEFAULT_TOOLS: readonly ToolFactory[] = [saveContactTool];

/**
 * The registry: for each job, the tools that apply to it.
 *
 * @example
 * ```ts
 * const tools = createToolRegistry({ contacts, clock, log });
 * tools(job).map((t) => t.name); // ['save_contact']
 * ```
 */
export function createToolRegistry(deps: ToolDeps, factories: readonly ToolFactory[] = DEFAULT_TOOLS): (job: Job) => readonly ToolDefinition[] {
  return (job) => {
    const tools: ToolDefinition[] = [];
    for (const factory of factories) {
      const tool = factory(job, deps);
      if (tool) tools.push(tool);
    }
    return tools;
  };
}
