import { fromApiGateway } from '../../lib/channels/http';
import { toEvent } from '../../local/lambda-http';

/** A payload 2.0 event for a POST whose requestContext names `domainName`. */
function eventOn(domainName: string): ReturnType<typeof toEvent> {
  return toEvent('POST', '/twilio/messaging?x=1', { 'content-type': 'text/plain', host: domainName }, Buffer.from('hi'), domainName);
}

describe('fromApiGateway', () => {
  it('keeps the raw path, query and body bytes', () => {
    // Act
    const req = fromApiGateway(eventOn('abc123.execute-api.us-east-1.amazonaws.com'), Date.now());

    // Assert
    expect([req.method, req.path, req.rawQuery, req.body.toString('utf8')]).toEqual(['POST', '/twilio/messaging', 'x=1', 'hi']);
  });

  it('names the function URL a request came through, and nothing else', () => {
    // Arrange: a function URL's host (https://docs.aws.amazon.com/lambda/latest/dg/urls-configuration.html),
    // the HTTP API's, a custom domain, and hosts that only look like a function URL's.
    const functionUrl = 'z4abc7ogynmz2tq0ttlhe1kpsi0jgkxv.lambda-url.us-east-1.on.aws';
    const others = ['abc123.execute-api.us-east-1.amazonaws.com', 'bot.example.com', `${functionUrl}.evil.example`, `a.${functionUrl}`, '127.0.0.1:3000'];

    // Act / Assert
    expect(fromApiGateway(eventOn(functionUrl), Date.now()).functionUrlOrigin).toBe(`https://${functionUrl}`);
    for (const host of others) expect([host, fromApiGateway(eventOn(host), Date.now()).functionUrlOrigin]).toEqual([host, undefined]);
  });
});
