/**
 * Lambda entry for GET /admin/contacts: lists the contacts registered through the
 * `save_contact` tool as JSON, for a bearer of `ADMIN_TOKEN`.
 *
 * - `ADMIN_TOKEN` unset: the endpoint does not exist (404), like a disabled channel.
 * - Missing or wrong token: 401 with `WWW-Authenticate: Bearer` (RFC 6750), compared in
 *   constant time (both sides hashed first, so even the length does not leak).
 * - Query: `limit` (1-100, default 50) and `after` (the `nextCursor` of the previous page).
 *
 * Its role may only read the table (GetItem, Query).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { functionConfig, type AppConfig } from '../lib/config';
import { fromApiGateway, json, serve, text, toApiGateway, type HttpRequest, type HttpResponse } from '../lib/channels/http';
import { lazyHandler } from '../lib/core/lazy';
import { createLog } from '../lib/core/log';
import type { Log } from '../lib/types';
import { createDocumentClient } from '../lib/store/client';
import { ContactStore } from '../lib/store/contacts';

/** What the admin endpoint needs. */
export interface AdminDeps {
  adminToken: string;
  contacts: Pick<ContactStore, 'list'>;
  log: Log;
}

/** Knobs tests turn. */
export interface AdminOverrides {
  log?: Log;
}

/** Constant-time comparison of a presented bearer token with the configured one. */
export function tokenMatches(presented: string, expected: string): boolean {
  if (expected === '') return false;
  const a = createHash('sha256').update(presented, 'utf8').digest();
  const b = createHash('sha256').update(expected, 'utf8').digest();
  return timingSafeEqual(a, b);
}

/** The token of an `Authorization: Bearer …` header, or `''`. */
export function bearerToken(header: string | undefined): string {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(header ?? '');
  return match?.[1] ?? '';
}

/** Handles GET /admin/contacts. */
export async function handleAdmin(deps: AdminDeps, req: HttpRequest): Promise<HttpResponse> {
  if (deps.adminToken === '') return text(404, 'not found');
  if (!tokenMatches(bearerToken(req.headers.authorization), deps.adminToken)) {
    deps.log.warn('admin request without a valid token', { path: req.path });
    const res = text(401, 'unauthorized');
    res.headers['www-authenticate'] = 'Bearer realm="admin"';
    return res;
  }
  if (req.method !== 'GET') return text(405, 'method not allowed');
  if (!req.path.endsWith('/admin/contacts')) return text(404, 'not found');
  const rawLimit = req.query.limit ?? '';
  const limit = /^\d{1,3}$/.test(rawLimit) ? Math.min(100, Math.max(1, Number(rawLimit))) : 50;
  const after = req.query.after ?? '';
  if (after !== '' && !/^\+\d{1,15}$/.test(after)) return text(400, 'bad cursor');
  const page = await deps.contacts.list(limit, after === '' ? undefined : after);
  const res = json(200, { contacts: page.contacts, nextCursor: page.nextCursor ?? null });
  res.headers['cache-control'] = 'no-store';
  return res;
}

/** Builds the handler for a configuration. */
export function createAdminHandler(cfg: AppConfig, overrides: AdminOverrides = {}): (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2> {
  const log = overrides.log ?? createLog('admin', cfg.logLevel);
  const deps: AdminDeps = {
    adminToken: cfg.adminToken,
    contacts: new ContactStore(createDocumentClient(cfg.aws), cfg.aws.tableName),
    log,
  };
  return async (event) => toApiGateway(await serve(log, () => handleAdmin(deps, fromApiGateway(event, Date.now()))));
}

// Secrets come from SSM at the first invocation of a cold start (see lib/core/lazy.ts).
export const handler = lazyHandler(async () => createAdminHandler(await functionConfig('admin')));
