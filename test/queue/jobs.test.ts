import { asciiJson, deduplicationId, MalformedJobError, messageGroupId, parseJob, sqsId } from '../../lib/queue/jobs';
import type { Job } from '../../lib/types';

const job: Job = {
  v: 1,
  channel: 'wechat',
  userId: 'oyORnuP8q7ou2gfYjqLzSIWZf0rs',
  msgKey: '6054768590064713728',
  conversationKey: 'wechat#oyORnuP8q7ou2gfYjqLzSIWZf0rs',
  input: { kind: 'text', text: 'hi' },
  reply: { channel: 'wechat', accountId: 'gh_10f6c3c3ac5a' },
  arrivedAtMs: 1_700_000_000_000,
};

describe('job queue ids', () => {
  it('groups by channel and user so one user is answered in order', () => {
    expect(messageGroupId(job)).toBe('wechat#oyORnuP8q7ou2gfYjqLzSIWZf0rs');
    expect(messageGroupId({ ...job, userId: 'other' })).not.toBe(messageGroupId(job));
  });

  it('keeps ids within SQS 128-character limit and allowed characters', () => {
    const long = { ...job, userId: 'ü'.repeat(300) };
    expect(messageGroupId(long).length).toBeLessThanOrEqual(128);
    expect(deduplicationId(long)).toMatch(/^[\x21-\x7e]{1,128}$/);
  });

  it('gives two menu clicks whose EventKeys differ only in non-ASCII characters different ids', () => {
    // Arrange: the same user clicks 菜单A, then 订阅A, in the same second.
    const menu = { ...job, msgKey: 'evt:1700000000:CLICK:菜单A' };
    const subscribe = { ...job, msgKey: 'evt:1700000000:CLICK:订阅A' };
    // Act
    const ids = [deduplicationId(menu), deduplicationId(subscribe)];
    // Assert
    expect(ids[0]).not.toBe(ids[1]);
    for (const id of ids) expect(id).toMatch(/^[\x21-\x7e]{1,128}$/);
  });

  it('keeps a safe key as is and hashes any other, so raw and hashed ids never meet', () => {
    expect(sqsId('wechat#o-a#123')).toBe('wechat#o-a#123');
    expect(sqsId('a b')).toMatch(/^[0-9a-f]{64}$/);
    expect(sqsId('x'.repeat(129))).toMatch(/^[0-9a-f]{64}$/);
    expect(sqsId('x'.repeat(128))).toBe('x'.repeat(128));
    expect(sqsId('wechat#ü')).not.toBe(sqsId('wechat#ö'));
  });

  it('keeps 64-bit message ids exact', () => {
    expect(deduplicationId(job)).toContain('6054768590064713728');
  });
});

describe('parseJob', () => {
  it('round-trips a job', () => {
    expect(parseJob(JSON.stringify(job))).toEqual(job);
  });

  it.each(['not json', '{}', JSON.stringify({ ...job, v: 2 }), JSON.stringify({ ...job, input: null })])('rejects %p', (body) => {
    expect(() => parseJob(body)).toThrow(MalformedJobError);
  });
});

describe('asciiJson', () => {
  it('escapes emoji, CJK and lone surrogates so SQS accepts the body, and round-trips', () => {
    const text = 'hi 😀 你好 \ud800 end';
    const body = asciiJson({ text });
    expect(body).toMatch(/^[\x20-\x7e]*$/);
    expect(JSON.parse(body)).toEqual({ text });
  });
});
