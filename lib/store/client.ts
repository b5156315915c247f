import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { AwsConfig } from '../config';

/**
 * A DynamoDB document client for the configured region, pointed at the local stand-in
 * when `DYNAMODB_ENDPOINT` is set. Built by the function entry, never at module scope
 * inside lib/, so tests can hand in their own.
 */
export function createDocumentClient(aws: AwsConfig): DynamoDBDocumentClient {
  const client = new DynamoDBClient({
    region: aws.region,
    ...(aws.dynamoEndpoint ? { endpoint: aws.dynamoEndpoint } : {}),
  });
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true },
  });
}

/** True when a conditional write lost its race (the item exists or moved on). */
export function isConditionFailure(err: unknown): boolean {
  return err instanceof Error && err.name === 'ConditionalCheckFailedException';
}

/** DynamoDB TTL is in epoch seconds (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/howitworks-ttl.html). */
export function ttlSec(nowMs: number, days: number): number {
  return Math.floor(nowMs / 1000) + Math.round(days * 86_400);
}
