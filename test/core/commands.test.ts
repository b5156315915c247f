import { parseCommand } from '../../lib/core/commands';
import { isAllowed } from '../../lib/core/turn';
import { loadConfig } from '../../lib/config';

describe('parseCommand', () => {
  it.each([
    ['/clear', 'clear'],
    ['  /RESET ', 'clear'],
    ['／clear', 'clear'],
    ['/help', 'help'],
  ])('recognises %p', (input, expected) => {
    expect(parseCommand(input)).toBe(expected);
  });

  it.each(['clear', '/clear please', 'what does /help do?', '', '1'])('treats %p as a question', (input) => {
    expect(parseCommand(input)).toBeUndefined();
  });
});

describe('isAllowed', () => {
  it('lets everyone in when the list is empty', () => {
    expect(isAllowed(new Set(), 'anyone')).toBe(true);
  });

  it('matches phone numbers with or without + and whatsapp:, however the list writes them', () => {
    const allowed = loadConfig({ ALLOWED_USERS: 'whatsapp:+1 (555) 123-4567, oUser1' }).allowedUsers;
    expect(isAllowed(allowed, 'whatsapp:+15551234567')).toBe(true);
    expect(isAllowed(allowed, '15551234567')).toBe(true);
    expect(isAllowed(allowed, 'oUser1')).toBe(true);
    expect(isAllowed(allowed, '+15550000000')).toBe(false);
    expect(isAllowed(allowed, 'oUser2')).toBe(false);
  });
});

