/**
 * createResources builds the table and queues from lib/infra/*.json (the files
 * serverless.yml deploys), on the real emulators.
 */
import { DescribeTableCommand, DescribeTimeToLiveCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { spawnEmulators, type SpawnedEmulators } from '../../local/emulator-process';
import { javaOnPath } from '../../local/emulators';
import {
  awsClientConfig,
  createResources,
  queueFromCloudFormation,
  readResource,
  INFRA_DIR,
  resolveTemplate,
  tableFromCloudFormation,
  type CreateResourcesOptions,
  useStandInCredentials,
} from '../../local/resources';

const REGION = 'us-east-1';

function names(id: string): Pick<CreateResourcesOptions, 'tableName' | 'queueName' | 'deadLetterQueueName'> {
  return { tableName: `llm-gateway-${id}`, queueName: `llm-gateway-${id}-jobs.fifo`, deadLetterQueueName: `llm-gateway-${id}-dlq.fifo` };
}

async function queueAttributes(sqs: SQSClient, queueUrl: string): Promise<Record<string, string>> {
  return (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] }))).Attributes ?? {};
}

describe('useStandInCredentials', () => {
  it('fills in dummy keys and drops a session token when no keys are set', () => {
    const env: NodeJS.ProcessEnv = { AWS_SESSION_TOKEN: 'stale' };

    useStandInCredentials(env);

    expect(env).toEqual({ AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local' });
  });

  it('keeps keys that are already there', () => {
    const env: NodeJS.ProcessEnv = { AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 's', AWS_SESSION_TOKEN: 't' };

    useStandInCredentials(env);

    expect(env).toEqual({ AWS_ACCESS_KEY_ID: 'AKIA1', AWS_SECRET_ACCESS_KEY: 's', AWS_SESSION_TOKEN: 't' });
  });
});

describe('CloudFormation mapping (no emulator)', () => {
  it('substitutes ${self:custom.*} and Fn::GetAtt, and refuses what it cannot resolve', () => {
    const subs = { custom: { queueName: 'q.fifo' }, attributes: { DeadLetterQueue: { Arn: 'arn:dlq' } } };
    expect(resolveTemplate({ a: '${self:custom.queueName}', b: { 'Fn::GetAtt': ['DeadLetterQueue', 'Arn'] } }, subs)).toEqual({ a: 'q.fifo', b: 'arn:dlq' });
    expect(() => resolveTemplate('${self:custom.other}', subs)).toThrow(/self:custom.other/);
    expect(() => resolveTemplate('${sls:stage}', subs)).toThrow(/unsupported variable/);
    expect(() => resolveTemplate({ Ref: 'X' }, subs)).toThrow(/Ref is not supported/);
    expect(() => resolveTemplate({ 'Fn::GetAtt': ['Table', 'Arn'] }, subs)).toThrow(/Table.Arn/);
  });

  it('maps table.json to CreateTable with the pending GSI and TTL', () => {
    const props = resolveTemplate(readResource(INFRA_DIR, 'table.json', 'AWS::DynamoDB::Table'), { custom: { tableName: 'tbl' }, attributes: {} });
    if (typeof props !== 'object' || props === null || Array.isArray(props)) throw new Error('expected an object');
    const { input, ttl } = tableFromCloudFormation({ ...props });
    expect(input.TableName).toBe('tbl');
    expect(input.BillingMode).toBe('PAY_PER_REQUEST');
    expect(input.GlobalSecondaryIndexes?.map((gsi) => gsi.IndexName)).toEqual(['pending', 'dead']);
    expect(ttl).toEqual({ attributeName: 'expiresAtSec', enabled: true });
  });

  it('rejects a queue property the local stack does not mirror', () => {
    expect(() => queueFromCloudFormation({ QueueName: 'q', Unknown: 1 }, 'JobQueue')).toThrow(/JobQueue.Unknown/);
  });
});

describe('createResources on dynalite + fauxqs', () => {
  let emulators: SpawnedEmulators;
  let dynamo: DynamoDBClient;
  let sqs: SQSClient;

  beforeAll(async () => {
    emulators = await spawnEmulators({ engine: 'dynalite' });
    dynamo = new DynamoDBClient(awsClientConfig(emulators.dynamoEndpoint, REGION));
    sqs = new SQSClient(awsClientConfig(emulators.sqsEndpoint, REGION));
  });

  afterAll(async () => {
    dynamo.destroy();
    sqs.destroy();
    await emulators.stop();
  });

  it('creates the table with its keys, the pending GSI and on-demand billing', async () => {
    // Arrange / Act
    const res = await createResources({ dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, region: REGION, ...names('a') });
    // Assert
    const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: res.tableName }));
    expect(Table?.TableName).toBe('llm-gateway-a');
    expect(Table?.TableStatus).toBe('ACTIVE');
    expect(Table?.KeySchema).toEqual([
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ]);
    expect(Table?.BillingModeSummary?.BillingMode).toBe('PAY_PER_REQUEST');
    const pending = Table?.GlobalSecondaryIndexes?.find((gsi) => gsi.IndexName === 'pending');
    expect(pending?.KeySchema).toEqual([
      { AttributeName: 'pendingPk', KeyType: 'HASH' },
      { AttributeName: 'pendingSk', KeyType: 'RANGE' },
    ]);
    // Keys only: readers GetItem the records (lib/store/messages.ts listPendingKeys).
    expect(pending?.Projection?.ProjectionType).toBe('KEYS_ONLY');
    // dynalite has no UpdateTimeToLive: reported, not fatal.
    expect(res.ttlEnabled).toBe(false);
  });

  it('creates the FIFO job queue with a redrive policy naming the real DLQ ARN', async () => {
    const res = await createResources({ dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, region: REGION, ...names('b') });

    const queue = await queueAttributes(sqs, res.queueUrl);
    const dlq = await queueAttributes(sqs, res.deadLetterQueueUrl);
    expect(queue.QueueArn).toBe(res.queueArn);
    expect(queue.FifoQueue).toBe('true');
    expect(queue.ContentBasedDeduplication).toBe('false');
    expect(queue.VisibilityTimeout).toBe('1800');
    expect(queue.MessageRetentionPeriod).toBe('345600');
    // High-throughput FIFO, as deployed.
    expect(queue.DeduplicationScope).toBe('messageGroup');
    expect(queue.FifoThroughputLimit).toBe('perMessageGroupId');
    const redrive: unknown = JSON.parse(queue.RedrivePolicy ?? '{}');
    expect(redrive).toEqual({ deadLetterTargetArn: dlq.QueueArn, maxReceiveCount: 5 });
    expect(dlq.QueueArn).toBe(res.deadLetterQueueArn);
    expect(dlq.FifoQueue).toBe('true');
    expect(dlq.MessageRetentionPeriod).toBe('1209600');
    expect(res.queueUrl).toContain('llm-gateway-b-jobs.fifo');
  });

  it('is idempotent and applies a changed visibility override to the existing queue', async () => {
    const opts = { dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, region: REGION, ...names('c') };
    const first = await createResources(opts);
    const second = await createResources(opts);
    const third = await createResources({ ...opts, visibilityTimeoutSec: 1 });

    expect(second).toEqual(first);
    expect(third.queueUrl).toBe(first.queueUrl);
    expect((await queueAttributes(sqs, first.queueUrl)).VisibilityTimeout).toBe('1');
  });
});

// DynamoDB Local listens on every interface (no bind option); opt in with TEST_DYNAMODB_LOCAL=1.
const withJava = javaOnPath() && process.env.TEST_DYNAMODB_LOCAL === '1' ? describe : describe.skip;
withJava('createResources on DynamoDB Local', () => {
  let emulators: SpawnedEmulators;

  beforeAll(async () => {
    emulators = await spawnEmulators({ engine: 'dynamodb-local' });
  });

  afterAll(async () => {
    await emulators.stop();
  });

  it('turns TTL on for expiresAtSec, as CloudFormation does', async () => {
    const opts = { dynamoEndpoint: emulators.dynamoEndpoint, sqsEndpoint: emulators.sqsEndpoint, region: REGION, ...names('ttl') };
    const res = await createResources(opts);
    // Run twice: enabling TTL again would be a ValidationException on the real service.
    await createResources(opts);

    const dynamo = new DynamoDBClient(awsClientConfig(emulators.dynamoEndpoint, REGION));
    const ttl = await dynamo.send(new DescribeTimeToLiveCommand({ TableName: res.tableName }));
    const table = await dynamo.send(new DescribeTableCommand({ TableName: res.tableName }));
    dynamo.destroy();
    expect(res.ttlEnabled).toBe(true);
    expect(ttl.TimeToLiveDescription).toEqual({ TimeToLiveStatus: 'ENABLED', AttributeName: 'expiresAtSec' });
    expect(table.Table?.GlobalSecondaryIndexes?.map((gsi) => gsi.IndexName)).toEqual(['pending', 'dead']);
  });
});
