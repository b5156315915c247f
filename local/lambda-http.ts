/**
 * A tiny local API Gateway (HTTP API, payload 2.0) for tests: real HTTP on 127.0.0.1,
 * each request turned into the event Lambda would get and handed to the very handler
 * the function exports. Vendors' fakes talk to it over the network, with timeouts.
 */
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';
import { closeServer, listenLocal, readBody } from './fakes/fake-http';

/** A Lambda HTTP handler. */
export type HttpHandler = (event: APIGatewayProxyEventV2) => Promise<APIGatewayProxyStructuredResultV2>;

/** A running local gateway. */
export interface LambdaHttp {
  url: string;
  close(): Promise<void>;
}

/**
 * Builds the API Gateway v2 event for a request. `domainName`: the host API Gateway or a
 * function URL puts in `requestContext` (tests of a request through a function URL name it).
 */
export function toEvent(method: string, rawUrl: string, headers: Record<string, string>, body: Buffer, domainName = '127.0.0.1'): APIGatewayProxyEventV2 {
  const url = new URL(rawUrl, 'http://127.0.0.1');
  const textual = /json|xml|text|x-www-form-urlencoded/.test(headers['content-type'] ?? '');
  const nowMs = Date.now();
  return {
    version: '2.0',
    routeKey: `${method} ${url.pathname}`,
    rawPath: url.pathname,
    rawQueryString: url.search.replace(/^\?/, ''),
    headers,
    requestContext: {
      accountId: '123456789012',
      apiId: 'local',
      // Given, never taken from the request line: an absolute-form URL there would let a local
      // client name any host, a function URL's among them (lib/channels/http.ts).
      domainName,
      domainPrefix: 'local',
      http: { method, path: url.pathname, protocol: 'HTTP/1.1', sourceIp: '127.0.0.1', userAgent: headers['user-agent'] ?? '' },
      requestId: `req-${nowMs}-${Math.random().toString(36).slice(2)}`,
      routeKey: `${method} ${url.pathname}`,
      stage: '$default',
      time: new Date(nowMs).toISOString(),
      timeEpoch: nowMs,
    },
    // API Gateway base64-encodes bodies it does not consider text; exercise both paths.
    body: body.length === 0 ? undefined : textual ? body.toString('utf8') : body.toString('base64'),
    isBase64Encoded: body.length > 0 && !textual,
  };
}

/** Serves `routes` (path → handler) on 127.0.0.1 at a random port. */
export async function serveLambdas(routes: Record<string, HttpHandler>): Promise<LambdaHttp> {
  const { server, port } = await listenLocal('no address', (req, res) => {
    void (async () => {
      const body = await readBody(req);
      const path = new URL(req.url ?? '/', 'http://127.0.0.1').pathname;
      const handler = routes[path];
      if (!handler) {
        res.writeHead(404).end('not found');
        return;
      }
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === 'string') headers[name] = value;
        else if (Array.isArray(value)) headers[name] = value.join(',');
      }
      const result = await handler(toEvent(req.method ?? 'GET', req.url ?? '/', headers, body));
      if (res.destroyed) return; // the caller gave up (WeChat's 5 s): the answer goes nowhere
      const outHeaders: Record<string, string> = {};
      for (const [name, value] of Object.entries(result.headers ?? {})) outHeaders[name] = String(value);
      res.writeHead(result.statusCode ?? 200, outHeaders).end(result.body ?? '');
    })().catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(502).end(String(err));
    });
  });
  return {
    url: `http://127.0.0.1:${port}`,
    close: () => closeServer(server),
  };
}
