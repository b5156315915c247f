import { bearerToken, handleAdmin, tokenMatches, type AdminDeps } from '../../../functions/admin';
import type { HttpRequest } from '../../../lib/channels/http';
import { silentLog } from '../../../lib/types';
import type { Contact, ContactPage } from '../../../lib/store/contacts';

const ada: Contact = { phone: '+15551234567', name: 'Ada', channel: 'twilio', registeredBy: '+15551234567', createdAtMs: 1, updatedAtMs: 2 };

function request(headers: Record<string, string> = {}, query: Record<string, string> = {}): HttpRequest {
  return { method: 'GET', path: '/admin/contacts', rawQuery: new URLSearchParams(query).toString(), query, headers, body: Buffer.alloc(0), receivedAtMs: 0 };
}

function deps(adminToken: string, calls: { limit: number; after: string | undefined }[] = []): AdminDeps {
  return {
    adminToken,
    log: silentLog,
    contacts: {
      list: async (limit: number, after?: string): Promise<ContactPage> => {
        calls.push({ limit, after });
        return { contacts: [ada], nextCursor: undefined };
      },
    },
  };
}

describe('GET /admin/contacts', () => {
  it('does not exist when ADMIN_TOKEN is unset', async () => {
    const res = await handleAdmin(deps(''), request({ authorization: 'Bearer ' }));
    expect(res.statusCode).toBe(404);
  });

  it('answers 401 without or with a wrong bearer token', async () => {
    const variants: Record<string, string>[] = [{}, { authorization: 'Bearer wrong' }, { authorization: 'Basic c2VjcmV0' }, { authorization: 'secret' }];
    for (const headers of variants) {
      const res = await handleAdmin(deps('secret'), request(headers));
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toMatch(/^Bearer/);
      expect(res.body).not.toContain('Ada');
    }
  });

  it('lists contacts as JSON for the right token, with paging', async () => {
    const calls: { limit: number; after: string | undefined }[] = [];
    const res = await handleAdmin(deps('secret', calls), request({ authorization: 'Bearer secret' }, { limit: '10', after: '+15550000000' }));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const body: unknown = JSON.parse(res.body);
    expect(body).toEqual({ contacts: [ada], nextCursor: null });
    expect(calls).toEqual([{ limit: 10, after: '+15550000000' }]);
  });

  it('rejects a malformed cursor', async () => {
    const res = await handleAdmin(deps('secret'), request({ authorization: 'bearer secret' }, { after: 'phone#x' }));
    expect(res.statusCode).toBe(400);
  });
});

describe('token helpers', () => {
  it('compares tokens exactly, never matching an empty configured token', () => {
    expect(tokenMatches('abc', 'abc')).toBe(true);
    expect(tokenMatches('abcd', 'abc')).toBe(false);
    expect(tokenMatches('', '')).toBe(false);
    expect(bearerToken('Bearer  tok ')).toBe('tok');
    expect(bearerToken('Bearer')).toBe('');
    expect(bearerToken(undefined)).toBe('');
  });
});
