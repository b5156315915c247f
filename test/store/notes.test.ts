import { formatNote, NO_NOTE, parseNote, type RecordNote } from '../../lib/store/notes';

describe('record notes', () => {
  it.each<[string, RecordNote]>([
    ['', NO_NOTE],
    ['fetch', { kind: 'fetch' }],
    ['push_failed:45015', { kind: 'push_failed', code: '45015', told: false }],
    ['push_failed:45047:told', { kind: 'push_failed', code: '45047', told: true }],
    ['push_quota', { kind: 'push_quota' }],
    ['apology', { kind: 'apology' }],
    ['interrupted', { kind: 'interrupted' }],
    ['session_closed:63016', { kind: 'session_closed', code: '63016' }],
    ['window_closed:template_sent', { kind: 'window_closed', outcome: 'template_sent' }],
    ['window_closed:no_template', { kind: 'window_closed', outcome: 'no_template' }],
    ['window_closed:template_failed:132001', { kind: 'window_closed', outcome: 'template_failed', code: '132001' }],
    ['rate_limited:131056', { kind: 'send_stopped', reason: 'rate_limited', code: '131056' }],
    ['token_error:190', { kind: 'send_stopped', reason: 'token_error', code: '190' }],
    ['transient_error:131000', { kind: 'send_stopped', reason: 'transient_error', code: '131000' }],
    ['undeliverable:131026', { kind: 'send_stopped', reason: 'undeliverable', code: '131026' }],
    ['failed:21211', { kind: 'send_stopped', reason: 'failed', code: '21211' }],
  ])('reads the stored string %p written by earlier versions, and writes it back the same', (stored, note) => {
    expect(parseNote(stored)).toEqual(note);
    expect(formatNote(note)).toBe(stored);
  });

  it.each(['something_new', 'fetch:extra', 'window_closed:unknown', 'failed'])('keeps an unknown string %p verbatim', (stored) => {
    expect(parseNote(stored)).toEqual({ kind: 'other', text: stored });
    expect(formatNote(parseNote(stored))).toBe(stored);
  });
});
