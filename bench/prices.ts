/**
 * The list prices `npm run cost` turns counts into dollars with: us-east-1, arm64, on-demand.
 * Checked 2026-12-03 against:
 *  - Lambda: https://aws.amazon.com/lambda/pricing/ ($0.20 per 1M requests; arm64 $0.0000133334 per GB-second, first tier)
 *  - SQS: https://aws.amazon.com/sqs/pricing/ (FIFO $0.50 per 1M requests; each 64 KB chunk of a payload is one request)
 *  - DynamoDB: https://aws.amazon.com/dynamodb/pricing/on-demand/ ($0.625 per 1M write request units, $0.125 per 1M read
 *    request units since the November 2024 reduction; 1 WRU per 1 KB written, 1 RRU per 4 KB strongly consistent read,
 *    half for an eventually consistent one)
 *  - API Gateway HTTP API: https://aws.amazon.com/api-gateway/pricing/ ($1.00 per 1M requests, first 300M)
 *  - CloudWatch Logs: https://aws.amazon.com/cloudwatch/pricing/ ($0.50 per GB ingested, standard class)
 * Free tiers are left out: the figure is the marginal cost of a message.
 */
export const PRICES = {
  source: 'AWS list prices, us-east-1, arm64, checked 2026-12-03 (URLs in bench/prices.ts)',
  lambdaPerRequest: 0.2 / 1e6,
  lambdaPerGbSecond: 0.0000133334,
  sqsFifoPerRequest: 0.5 / 1e6,
  dynamoPerWriteUnit: 0.625 / 1e6,
  dynamoPerReadUnit: 0.125 / 1e6,
  httpApiPerRequest: 1.0 / 1e6,
  logsPerByte: 0.5 / 2 ** 30,
} as const;
