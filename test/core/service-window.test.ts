import { SERVICE_WINDOW_MS, isWindowClosed, windowClosedFact, type ServiceWindow } from '../../lib/core/service-window';

const BY_SECOND: ServiceWindow = { closedAtFact: 'closedAtMs', resolutionMs: 1000 };
const BY_MS: ServiceWindow = { closedAtFact: 'closedAtMs', resolutionMs: 1 };

describe('isWindowClosed', () => {
  const now = 10 * SERVICE_WINDOW_MS;

  it('is open for a message under 24 h old with no finding, closed from 24 h on', () => {
    expect(isWindowClosed(BY_MS, {}, now - SERVICE_WINDOW_MS + 1, now)).toBe(false);
    expect(isWindowClosed(BY_MS, {}, now - SERVICE_WINDOW_MS, now)).toBe(true);
  });

  it('is closed for a message that arrived before the window was found closed, open for a newer one', () => {
    const facts = windowClosedFact(BY_MS, now - 500);
    expect(isWindowClosed(BY_MS, facts, now - 1000, now)).toBe(true);
    expect(isWindowClosed(BY_MS, facts, now - 400, now)).toBe(false);
  });

  it('counts a finding within the second the message arrived as after it, when the vendor reports whole seconds', () => {
    const arrived = now - 1000 + 700;
    const facts = { closedAtMs: String(now - 1000) };
    expect(isWindowClosed(BY_SECOND, facts, arrived, now)).toBe(true);
    expect(isWindowClosed(BY_MS, facts, arrived, now)).toBe(false);
    expect(isWindowClosed(BY_SECOND, { closedAtMs: String(now - 2000) }, arrived, now)).toBe(false);
  });

  it('ignores a fact that is not a time', () => {
    expect(isWindowClosed(BY_SECOND, { closedAtMs: 'garbage' }, now - 1000, now)).toBe(false);
    expect(isWindowClosed(BY_SECOND, { closedAtMs: '-5' }, now - 1000, now)).toBe(false);
  });
});

describe('windowClosedFact', () => {
  it('records the time under the window’s fact', () => {
    expect(windowClosedFact(BY_SECOND, 1_700_000_000_123)).toEqual({ closedAtMs: '1700000000123' });
  });
});
