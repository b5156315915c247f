/**
 * A minimal OpenAI-compatible streaming server for the delivery benchmark: each request
 * says how long the model should take (`latency:<ms>` in the user text), then the answer
 * `Answer to question <n>` streams in a few chunks.
 */
import { createServer } from 'node:http';

/** A running latency LLM. */
export interface LatencyLlm {
  baseUrl: string;
  calls(): number;
  /** When (epoch ms) the first request for each question arrived, by question id. */
  arrivals: Map<string, number>;
  close(): Promise<void>;
}

/** Starts the server on 127.0.0.1 at a random port. */
export async function startLatencyLlm(): Promise<LatencyLlm> {
  let calls = 0;
  const arrivals = new Map<string, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    const arrivedAt = Date.now();
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      calls++;
      const body = Buffer.concat(chunks).toString('utf8');
      const latency = Number([...body.matchAll(/latency:(\d+)/g)].pop()?.[1] ?? '0');
      // The last question in the body: the history before it holds earlier ones.
      const question = [...body.matchAll(/question ([\w-]+)/g)].pop()?.[1] ?? '?';
      if (!arrivals.has(question)) arrivals.set(question, arrivedAt);
      const answer = `Answer to question ${question}`;
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        for (const part of answer.match(/.{1,6}/g) ?? []) {
          res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: { content: part }, finish_reason: null }] })}\n\n`);
        }
        res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 0, model: 'm', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`);
        res.end('data: [DONE]\n\n');
      }, latency);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  return {
    baseUrl: `http://127.0.0.1:${address.port}/v1`,
    calls: () => calls,
    arrivals,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
