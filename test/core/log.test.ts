import { correlatedLog, createLog, maskId, maskIdsInText, maskingLog, redactLogFields, setCorrelationId, withCorrelationId } from '../../lib/core/log';
import type { Log } from '../../lib/types';
import { captureOutput } from '../support/output';

/** A log that keeps what it is given, to look at what a wrapper passes on. */
function recordingLog(): { log: Log; records: { level: string; message: string; extra: Record<string, unknown> | undefined }[] } {
  const records: { level: string; message: string; extra: Record<string, unknown> | undefined }[] = [];
  const at = (level: string) => (message: string, extra?: Record<string, unknown>) => {
    records.push({ level, message, extra });
  };
  return { log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, records };
}

describe('maskId', () => {
  it.each([
    ['+14155552671', '+14****2671'],
    ['14155552671', '14****2671'],
    ['whatsapp:+14155552671', 'whatsapp:+14****2671'],
    ['oyORnuP8q7ou2gfYjqLzSIWZf0rs', 'oy****f0rs'],
    ['user#twilio#+14155552671', 'user#twilio#+14****2671'],
    ['conv#twilio#+14155552671', 'conv#twilio#+14****2671'],
    ['whatsapp#16505551234', 'whatsapp#16****1234'],
    ['o-demo', '****mo'],
    ['+1234', '+****34'],
  ])('masks %s as %s', (raw, masked) => {
    expect(maskId(raw)).toBe(masked);
  });

  it('leaves an empty value and a bare prefix alone', () => {
    expect(maskId('')).toBe('');
    expect(maskId('whatsapp:')).toBe('whatsapp:');
  });
});

describe('maskIdsInText', () => {
  it("masks the number quoted in Twilio's 21211 message", () => {
    const text = "Twilio 21211: The 'To' number +14155552671 is not a valid phone number.";
    expect(maskIdsInText(text)).toBe("Twilio 21211: The 'To' number +14****2671 is not a valid phone number.");
  });

  it('masks WhatsApp addresses, bare wa_ids and OpenIDs', () => {
    const text = 'to whatsapp:+14155552671, wa_id 16505551234, user oyORnuP8q7ou2gfYjqLzSIWZf0rs';
    expect(maskIdsInText(text)).toBe('to whatsapp:+14****2671, wa_id 16****1234, user oy****f0rs');
  });

  it('keeps error codes, HTTP statuses, sizes and 64-bit MsgIds readable', () => {
    const text = 'WeChat custom/send errcode 45015 (HTTP 200); media of 26214400 bytes; MsgId 6054768590064713728';
    // 26214400 has 8 digits and is masked: a size is worth less than a leaked number.
    expect(maskIdsInText(text)).toBe('WeChat custom/send errcode 45015 (HTTP 200); media of ****00 bytes; MsgId 6054768590064713728');
  });
});

describe('redactLogFields', () => {
  it('masks identifier keys whatever their case, and free text, and keeps the rest', () => {
    // Arrange: records shaped like the gateway's own log calls.
    const fields = {
      recipient: '16505551234',
      messageId: 'wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI1RjQ0RjlDRTJDRjBDMTJGNTUA',
      codes: [131026],
      From: 'whatsapp:+14155552671',
      userId: '+14155552671',
      pk: 'user#twilio#+14155552671',
      conversationKey: 'twilio#+14155552671',
      error: "DeliveryError: Twilio 21211: The 'To' number +14155552671 is not a valid phone number.",
      msgKey: 'SM0123456789abcdef0123456789abcdef',
      part: 2,
    };
    // Act
    const out = redactLogFields(fields);
    // Assert
    expect(out).toEqual({
      recipient: '16****1234',
      messageId: fields.messageId,
      codes: [131026],
      From: 'whatsapp:+14****2671',
      userId: '+14****2671',
      pk: 'user#twilio#+14****2671',
      conversationKey: 'twilio#+14****2671',
      error: "DeliveryError: Twilio 21211: The 'To' number +14****2671 is not a valid phone number.",
      msgKey: fields.msgKey,
      part: 2,
    });
  });

  it('walks nested objects and arrays, masks everything under an identifier key, and reads Errors', () => {
    const out = redactLogFields({
      context: { to: '+14155552671', attempts: [{ openid: 'oyORnuP8q7ou2gfYjqLzSIWZf0rs' }] },
      user: { id: '+14155552671', numbers: ['+14155552672', 14155552673] },
      cause: new Error('send to +14155552671 refused'),
    });
    expect(out).toEqual({
      context: { to: '+14****2671', attempts: [{ openid: 'oy****f0rs' }] },
      user: { id: '+14****2671', numbers: ['+14****2672', '14****2673'] },
      cause: 'Error: send to +14****2671 refused',
    });
  });

  it('does not change the caller’s object', () => {
    const fields = { userId: '+14155552671' };
    redactLogFields(fields);
    expect(fields.userId).toBe('+14155552671');
  });
});

describe('maskingLog', () => {
  it('masks the message and the fields at every level', () => {
    // Arrange
    const inner = recordingLog();
    const log = maskingLog(inner.log);
    // Act
    log.debug('from +14155552671', { from: '+14155552671' });
    log.info('info', { userId: 'oyORnuP8q7ou2gfYjqLzSIWZf0rs' });
    log.warn('warn', { recipient: '16505551234' });
    log.error('error');
    // Assert
    expect(inner.records).toEqual([
      { level: 'debug', message: 'from +14****2671', extra: { from: '+14****2671' } },
      { level: 'info', message: 'info', extra: { userId: 'oy****f0rs' } },
      { level: 'warn', message: 'warn', extra: { recipient: '16****1234' } },
      { level: 'error', message: 'error', extra: {} },
    ]);
  });
});

describe('correlatedLog', () => {
  it('adds the id of the scope a line is written in, never another scope\'s', async () => {
    // Arrange: two messages handled at once, like the worker's parallel records.
    const inner = recordingLog();
    const log = correlatedLog(inner.log);
    const handle = async (key: string, delayMs: number): Promise<void> => {
      log.info('before the key is known');
      setCorrelationId(key);
      await new Promise((r) => setTimeout(r, delayMs));
      log.info('after a wait', { n: 1 });
    };
    // Act
    await Promise.all([withCorrelationId(undefined, () => handle('wamid.A', 20)), withCorrelationId(undefined, () => handle('SM-B', 5))]);
    log.warn('outside any scope');
    // Assert
    expect(inner.records.filter((r) => r.message === 'after a wait').map((r) => r.extra)).toEqual([
      { correlation_id: 'SM-B', n: 1 },
      { correlation_id: 'wamid.A', n: 1 },
    ]);
    expect(inner.records.filter((r) => r.message !== 'after a wait').map((r) => r.extra)).toEqual([undefined, undefined, undefined]);
  });

  it('masks an identifier inside a key and keeps a WeChat MsgId searchable as it is', async () => {
    // Arrange
    const inner = recordingLog();
    const log = correlatedLog(inner.log);
    // Act
    await withCorrelationId('fetch#oyORnuP8q7ou2gfYjqLzSIWZf0rs', async () => log.error('x'));
    await withCorrelationId('6054768590064713728', async () => log.error('y'));
    // Assert
    expect(inner.records.map((r) => r.extra)).toEqual([{ correlation_id: 'fetch#oy****f0rs' }, { correlation_id: '6054768590064713728' }]);
  });
});

describe('createLog', () => {
  it('prints JSON lines in which identifiers are masked', () => {
    // Arrange
    const capture = captureOutput();
    try {
      const log = createLog('test-service', 'DEBUG');
      // Act
      log.warn('whatsapp message failed', { recipient: '16505551234', messageId: 'wamid.X', codes: [131026] });
      log.error('job failed', { messageId: 'b1f8', error: "DeliveryError: Twilio 21211: The 'To' number +14155552671 is not a valid phone number." });
    } finally {
      capture.restore();
    }
    // Assert
    const lines = capture
      .text()
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l): unknown => JSON.parse(l));
    expect(lines).toEqual([
      expect.objectContaining({ level: 'WARN', message: 'whatsapp message failed', service: 'test-service', recipient: '16****1234', codes: [131026] }),
      expect.objectContaining({ level: 'ERROR', message: 'job failed', error: "DeliveryError: Twilio 21211: The 'To' number +14****2671 is not a valid phone number." }),
    ]);
    expect(capture.text()).not.toMatch(/16505551234|14155552671/);
  });
});
