/**
 * What the simulator page shows: one conversation per (channel, simulated user), each a list of
 * lines (the user's messages, what the end user would see, notes) and, on every user message,
 * a protocol timeline for developers. Kept in memory for as long as `npm start` runs.
 */
import { createHash } from 'node:crypto';

/** The channels of the picker. SMS and Voice both go through Twilio. */
export type SimChannel = 'wechat' | 'whatsapp' | 'sms' | 'voice';

export function isSimChannel(value: unknown): value is SimChannel {
  return value === 'wechat' || value === 'whatsapp' || value === 'sms' || value === 'voice';
}

/** One step of a message's protocol timeline. */
export interface Step {
  /** Milliseconds since the user sent the message. */
  atMs: number;
  text: string;
}

/** One line of a conversation. */
export interface Line {
  id: number;
  /** `user`: sent by the simulated user; `bot`: what the end user sees; `note`: what the app shows (e.g. an error). */
  from: 'user' | 'bot' | 'note';
  text: string;
  /** Epoch ms. */
  atMs: number;
  /** How it reached the user (`passive reply`, `custom/send`, `Graph /messages`, `TwiML <Say>`…). */
  via: string;
  /** User lines: the vendor read receipt arrived (WhatsApp blue ticks). */
  read: boolean;
  /** User lines: the protocol timeline. */
  timeline: Step[];
}

/** One simulated user on one channel. */
export interface Conversation {
  channel: SimChannel;
  /** The simulated user's name, as typed on the page. */
  user: string;
  /** The id the vendor uses for this user (OpenID, wa_id, phone number). */
  vendorId: string;
  lines: Line[];
  /** The vendor's typing indicator is on. */
  typing: boolean;
  /**
   * WhatsApp: pretend 24 h have passed since the user last wrote, so free-form messages fail
   * with 131047 and only templates get through.
   */
  windowClosed: boolean;
  /** Bumped on every change, so the page can skip unchanged polls. */
  version: number;
}

/** A safe user name: letters, digits, `-` and `_`, 1-24 characters. */
export function isUserName(value: unknown): value is string {
  return typeof value === 'string' && /^[A-Za-z0-9_-]{1,24}$/.test(value);
}

/** Seven stable digits for a user name, so its phone number is the same on every run. */
function digits(user: string): string {
  const n = createHash('sha256').update(user).digest().readUInt32BE(0) % 10_000_000;
  return String(n).padStart(7, '0');
}

/**
 * The vendor's id of a simulated user: an OpenID-shaped string on WeChat (28 characters
 * starting with `o`), a wa_id (digits, no `+`) on WhatsApp, an E.164 number on Twilio. SMS and
 * voice share the number, as one phone does (and the gateway shares their memory).
 */
export function vendorIdOf(channel: SimChannel, user: string): string {
  if (channel === 'wechat') return `oSim_${user}`.padEnd(28, '0').slice(0, 28);
  if (channel === 'whatsapp') return `1555${digits(user)}`;
  return `+1555${digits(user)}`;
}

/** All conversations of the running simulator. */
export class Conversations {
  private readonly byKey = new Map<string, Conversation>();
  private nextId = 1;

  constructor(private readonly now: () => number = Date.now) {}

  /** The conversation of `user` on `channel`, created empty on first use. */
  get(channel: SimChannel, user: string): Conversation {
    const key = `${channel}:${user}`;
    let conv = this.byKey.get(key);
    if (!conv) {
      conv = { channel, user, vendorId: vendorIdOf(channel, user), lines: [], typing: false, windowClosed: false, version: 0 };
      this.byKey.set(key, conv);
    }
    return conv;
  }

  /** The conversation whose vendor id is `vendorId` on one of `channels` (outbound calls name the recipient only). */
  findByVendorId(channels: readonly SimChannel[], vendorId: string): Conversation | undefined {
    for (const conv of this.byKey.values()) if (channels.includes(conv.channel) && conv.vendorId === vendorId) return conv;
    return undefined;
  }

  add(conv: Conversation, from: Line['from'], text: string, via: string): Line {
    const line: Line = { id: this.nextId++, from, text, atMs: this.now(), via, read: false, timeline: [] };
    conv.lines.push(line);
    if (from === 'bot') conv.typing = false;
    conv.version++;
    return line;
  }

  /** Adds a timeline step to `line` (a user line of `conv`). */
  step(conv: Conversation, line: Line, text: string): void {
    line.timeline.push({ atMs: this.now() - line.atMs, text });
    conv.version++;
  }

  /** The newest user line of `conv`: outbound API calls name the recipient, not the message. */
  lastUserLine(conv: Conversation): Line | undefined {
    for (let i = conv.lines.length - 1; i >= 0; i--) {
      const line = conv.lines[i];
      if (line?.from === 'user') return line;
    }
    return undefined;
  }

  setTyping(conv: Conversation, typing: boolean): void {
    conv.typing = typing;
    conv.version++;
  }

  setWindowClosed(conv: Conversation, closed: boolean): void {
    conv.windowClosed = closed;
    conv.version++;
  }

  markRead(conv: Conversation, line: Line): void {
    line.read = true;
    conv.version++;
  }

  /** Forgets what the page shows (the gateway's memory is unchanged: send /clear for that). */
  clear(conv: Conversation): void {
    conv.lines = [];
    conv.typing = false;
    conv.version++;
  }
}
