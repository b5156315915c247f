/**
 * WhatsApp ingress benchmarks on the same emulators as the WeChat ingress bench:
 * a signed text webhook (verify, parse, claim, enqueue, 200) and a status webhook
 * (verify, filtered before any other work).
 */
import { createWhatsAppHandler } from '../functions/whatsapp';
import { sampleStatusWebhook, sampleTextWebhook, signedWebhookEvent } from '../local/samples/whatsapp';
import { loadConfig } from '../lib/config';
import { silentLog } from '../lib/types';
import { measureSequential, pct } from './stats';

/** Where the emulators and resources are. */
export interface BenchStack {
  dynamoEndpoint: string;
  sqsEndpoint: string;
  tableName: string;
  queueUrl: string;
}

/** A table of figures. */
export interface BenchTable {
  title: string;
  rows: (string | number)[][];
}

/** Runs the WhatsApp ingress benchmarks. */
export async function extraBenches(stack: BenchStack): Promise<BenchTable[]> {
  const secret = 'bench_app_secret';
  const phoneNumberId = '106540352242922';
  const cfg = loadConfig({
    TABLE_NAME: stack.tableName,
    QUEUE_URL: stack.queueUrl,
    DYNAMODB_ENDPOINT: stack.dynamoEndpoint,
    SQS_ENDPOINT: stack.sqsEndpoint,
    WHATSAPP_VERIFY_TOKEN: 'v',
    WHATSAPP_APP_SECRET: secret,
    WHATSAPP_ACCESS_TOKEN: 't',
    WHATSAPP_PHONE_NUMBER_ID: phoneNumberId,
  });
  const handler = createWhatsAppHandler(cfg, { log: silentLog });
  const measure = (make: (i: number) => string): Promise<number[]> => measureSequential(handler, (i) => signedWebhookEvent(secret, make(i)));
  const text = await measure((i) => sampleTextWebhook({ phoneNumberId, from: `1555000${String(i % 50).padStart(4, '0')}`, text: `message ${i}` }));
  const status = await measure((i) => sampleStatusWebhook({ phoneNumberId, recipientId: `1555000${String(i % 50).padStart(4, '0')}`, status: 'delivered' }));
  return [
    {
      title: 'WhatsApp ingress (dynalite + fauxqs on loopback, 500 sequential webhooks each)',
      rows: [
        ['signed text webhook p50 ms', pct(text, 50)],
        ['signed text webhook p99 ms', pct(text, 99)],
        ['status webhook p50 ms', pct(status, 50)],
        ['status webhook p99 ms', pct(status, 99)],
      ],
    },
  ];
}
