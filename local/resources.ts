/**
 * Creates the DynamoDB table and the SQS queues on the local stand-ins FROM THE SAME
 * CloudFormation definitions serverless.yml deploys (lib/infra/*.json), so the local
 * stack cannot drift from production: a new GSI or queue setting shows up here too, and
 * a property we cannot mirror locally fails loudly instead of being silently dropped.
 *
 * Only the variables and intrinsics those files use are resolved:
 * `${self:custom.tableName|queueName|deadLetterQueueName}` and `Fn::GetAtt [DeadLetterQueue, Arn]`.
 */
import { readFileSync } from 'node:fs';
import { LOCAL_CREDENTIALS } from './credentials';
import { join } from 'node:path';
import {
  BillingMode,
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  KeyType,
  ProjectionType,
  ScalarAttributeType,
  StreamViewType,
  UpdateTimeToLiveCommand,
  type AttributeDefinition,
  type CreateTableCommandInput,
  type GlobalSecondaryIndex,
  type KeySchemaElement,
  type LocalSecondaryIndex,
  type Projection,
  type ProvisionedThroughput,
} from '@aws-sdk/client-dynamodb';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  QueueNameExists,
  SetQueueAttributesCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';

/** Options of {@link createResources}. */
export interface CreateResourcesOptions {
  dynamoEndpoint: string;
  sqsEndpoint: string;
  region: string;
  /** Substituted for `${self:custom.tableName}`. */
  tableName: string;
  /** Substituted for `${self:custom.queueName}` (FIFO: must end in `.fifo`). */
  queueName: string;
  /** Substituted for `${self:custom.deadLetterQueueName}`. */
  deadLetterQueueName: string;
  /** Overrides the job queue's VisibilityTimeout (tests use 1 s to see redeliveries quickly). */
  visibilityTimeoutSec?: number;
  /** Where table.json, queue.json and dead-letter-queue.json live (default lib/infra). */
  infraDir?: string;
}

/** What {@link createResources} made (or found already there). */
export interface LocalResources {
  tableName: string;
  queueUrl: string;
  deadLetterQueueUrl: string;
  queueArn: string;
  deadLetterQueueArn: string;
  /** False on dynalite, which lacks UpdateTimeToLive; our reads filter expired items anyway. */
  ttlEnabled: boolean;
}

/** SDK client settings for the local stand-ins. */
export interface LocalAwsClientConfig {
  endpoint: string;
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
}

export { LOCAL_CREDENTIALS, useStandInCredentials } from './credentials';

/**
 * Client configuration for a local emulator: explicit endpoint and static dummy
 * credentials, so the SDK never looks for a profile, SSO or instance metadata.
 */
export function awsClientConfig(endpoint: string, region: string): LocalAwsClientConfig {
  return { endpoint, region, credentials: { ...LOCAL_CREDENTIALS } };
}

// ---------------------------------------------------------------------------------------------
// CloudFormation resolution

type Json = unknown;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Values for `${self:custom.*}` and `Fn::GetAtt` while resolving a template fragment. */
interface Substitutions {
  custom: Readonly<Record<string, string>>;
  /** logicalId → attribute → value. */
  attributes: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/** Resolves the serverless variables and CloudFormation intrinsics our infra files use. */
export function resolveTemplate(value: Json, subs: Substitutions, where = '$'): Json {
  if (typeof value === 'string') {
    const replaced = value.replace(/\$\{self:custom\.([A-Za-z0-9_]+)\}/g, (_match, name: string) => {
      const found = subs.custom[name];
      if (found === undefined) throw new Error(`${where}: no local value for \${self:custom.${name}}`);
      return found;
    });
    if (replaced.includes('${')) throw new Error(`${where}: unsupported variable in "${value}"`);
    return replaced;
  }
  if (Array.isArray(value)) return value.map((item, index) => resolveTemplate(item, subs, `${where}[${index}]`));
  if (!isRecord(value)) return value;
  const keys = Object.keys(value);
  const getAtt = value['Fn::GetAtt'];
  if (keys.length === 1 && getAtt !== undefined) {
    if (!Array.isArray(getAtt) || getAtt.length !== 2 || typeof getAtt[0] !== 'string' || typeof getAtt[1] !== 'string') {
      throw new Error(`${where}: Fn::GetAtt must be [logicalId, attribute]`);
    }
    const found = subs.attributes[getAtt[0]]?.[getAtt[1]];
    if (found === undefined) throw new Error(`${where}: cannot resolve Fn::GetAtt ${getAtt[0]}.${getAtt[1]} locally`);
    return found;
  }
  const intrinsic = keys.find((key) => key === 'Ref' || key.startsWith('Fn::'));
  if (intrinsic !== undefined) throw new Error(`${where}: ${intrinsic} is not supported by the local stack`);
  const out: Record<string, Json> = {};
  for (const [key, item] of Object.entries(value)) out[key] = resolveTemplate(item, subs, `${where}.${key}`);
  return out;
}

/** Reads one infra file and checks it is the expected resource type. */
export function readResource(infraDir: string, file: string, type: string): Record<string, unknown> {
  const path = join(infraDir, file);
  const parsed: unknown = JSON.parse(readFileSync(path, 'utf8'));
  if (!isRecord(parsed) || parsed.Type !== type || !isRecord(parsed.Properties)) {
    throw new Error(`${path}: expected a ${type} resource with Properties`);
  }
  return parsed.Properties;
}

// ---------------------------------------------------------------------------------------------
// Typed readers over resolved JSON (they validate instead of casting)

function str(obj: Record<string, unknown>, key: string, where: string): string {
  const value = obj[key];
  if (typeof value !== 'string') throw new Error(`${where}.${key} must be a string`);
  return value;
}

function num(obj: Record<string, unknown>, key: string, where: string): number {
  const value = obj[key];
  if (typeof value === 'number') return value;
  // CloudFormation accepts numbers written as strings.
  if (typeof value === 'string' && /^\d+$/.test(value)) return Number(value);
  throw new Error(`${where}.${key} must be a number`);
}

function records(obj: Record<string, unknown>, key: string, where: string): Record<string, unknown>[] {
  const value = obj[key];
  if (!Array.isArray(value)) throw new Error(`${where}.${key} must be a list`);
  return value.map((item, index) => {
    if (!isRecord(item)) throw new Error(`${where}.${key}[${index}] must be an object`);
    return item;
  });
}

function record(obj: Record<string, unknown>, key: string, where: string): Record<string, unknown> {
  const value = obj[key];
  if (!isRecord(value)) throw new Error(`${where}.${key} must be an object`);
  return value;
}

/** Narrows a string to one of an SDK enum's values. */
function oneOf<T extends string>(enumObject: Readonly<Record<string, T>>, value: string, where: string): T {
  const found = Object.values(enumObject).find((allowed) => allowed === value);
  if (found === undefined) throw new Error(`${where}: "${value}" is not one of ${Object.values(enumObject).join(', ')}`);
  return found;
}

function keySchema(obj: Record<string, unknown>, where: string): KeySchemaElement[] {
  return records(obj, 'KeySchema', where).map((key, index) => ({
    AttributeName: str(key, 'AttributeName', `${where}.KeySchema[${index}]`),
    KeyType: oneOf(KeyType, str(key, 'KeyType', `${where}.KeySchema[${index}]`), `${where}.KeySchema[${index}]`),
  }));
}

function projection(obj: Record<string, unknown>, where: string): Projection {
  const p = record(obj, 'Projection', where);
  const nonKey = p.NonKeyAttributes;
  return {
    ProjectionType: oneOf(ProjectionType, str(p, 'ProjectionType', `${where}.Projection`), `${where}.Projection`),
    ...(Array.isArray(nonKey) ? { NonKeyAttributes: nonKey.map((name) => String(name)) } : {}),
  };
}

function throughput(obj: Record<string, unknown>, where: string): ProvisionedThroughput | undefined {
  const value = obj.ProvisionedThroughput;
  if (!isRecord(value)) return undefined;
  return {
    ReadCapacityUnits: num(value, 'ReadCapacityUnits', `${where}.ProvisionedThroughput`),
    WriteCapacityUnits: num(value, 'WriteCapacityUnits', `${where}.ProvisionedThroughput`),
  };
}

/** Table properties with no local meaning (encryption, backups, tags, protection). */
const TABLE_PROPERTIES_IGNORED_LOCALLY = new Set([
  'SSESpecification',
  'PointInTimeRecoverySpecification',
  'DeletionProtectionEnabled',
  'Tags',
  'ContributorInsightsSpecification',
  'TableClass',
]);

const TABLE_PROPERTIES_MAPPED = new Set([
  'TableName',
  'BillingMode',
  'AttributeDefinitions',
  'KeySchema',
  'GlobalSecondaryIndexes',
  'LocalSecondaryIndexes',
  'ProvisionedThroughput',
  'StreamSpecification',
  'TimeToLiveSpecification',
]);

/** A TTL setting from `TimeToLiveSpecification`. */
export interface TtlSpec {
  attributeName: string;
  enabled: boolean;
}

/** Maps resolved `AWS::DynamoDB::Table` properties to CreateTable input (+ the TTL setting). */
export function tableFromCloudFormation(props: Record<string, unknown>): { input: CreateTableCommandInput; ttl: TtlSpec | undefined } {
  const where = 'Table';
  for (const key of Object.keys(props)) {
    if (!TABLE_PROPERTIES_MAPPED.has(key) && !TABLE_PROPERTIES_IGNORED_LOCALLY.has(key)) {
      throw new Error(`${where}.${key} is not mirrored by local/resources.ts; teach it this property`);
    }
  }
  const attributeDefinitions: AttributeDefinition[] = records(props, 'AttributeDefinitions', where).map((def, index) => ({
    AttributeName: str(def, 'AttributeName', `${where}.AttributeDefinitions[${index}]`),
    AttributeType: oneOf(ScalarAttributeType, str(def, 'AttributeType', `${where}.AttributeDefinitions[${index}]`), `${where}.AttributeDefinitions[${index}]`),
  }));
  const billingMode = props.BillingMode === undefined ? BillingMode.PROVISIONED : oneOf(BillingMode, str(props, 'BillingMode', where), where);
  const gsis: GlobalSecondaryIndex[] | undefined =
    props.GlobalSecondaryIndexes === undefined
      ? undefined
      : records(props, 'GlobalSecondaryIndexes', where).map((gsi, index) => {
          const at = `${where}.GlobalSecondaryIndexes[${index}]`;
          const pt = throughput(gsi, at);
          return { IndexName: str(gsi, 'IndexName', at), KeySchema: keySchema(gsi, at), Projection: projection(gsi, at), ...(pt ? { ProvisionedThroughput: pt } : {}) };
        });
  const lsis: LocalSecondaryIndex[] | undefined =
    props.LocalSecondaryIndexes === undefined
      ? undefined
      : records(props, 'LocalSecondaryIndexes', where).map((lsi, index) => {
          const at = `${where}.LocalSecondaryIndexes[${index}]`;
          return { IndexName: str(lsi, 'IndexName', at), KeySchema: keySchema(lsi, at), Projection: projection(lsi, at) };
        });
  const stream = isRecord(props.StreamSpecification)
    ? { StreamEnabled: true, StreamViewType: oneOf(StreamViewType, str(props.StreamSpecification, 'StreamViewType', `${where}.StreamSpecification`), `${where}.StreamSpecification`) }
    : undefined;
  const pt = throughput(props, where);
  const ttlSpec = isRecord(props.TimeToLiveSpecification) ? props.TimeToLiveSpecification : undefined;
  return {
    input: {
      TableName: str(props, 'TableName', where),
      BillingMode: billingMode,
      AttributeDefinitions: attributeDefinitions,
      KeySchema: keySchema(props, where),
      ...(gsis ? { GlobalSecondaryIndexes: gsis } : {}),
      ...(lsis ? { LocalSecondaryIndexes: lsis } : {}),
      ...(pt ? { ProvisionedThroughput: pt } : {}),
      ...(stream ? { StreamSpecification: stream } : {}),
    },
    ttl: ttlSpec
      ? { attributeName: str(ttlSpec, 'AttributeName', `${where}.TimeToLiveSpecification`), enabled: ttlSpec.Enabled === true }
      : undefined,
  };
}

/** CloudFormation `AWS::SQS::Queue` properties that are queue attributes of the same name. */
const QUEUE_ATTRIBUTES = new Set([
  'ContentBasedDeduplication',
  'DeduplicationScope',
  'DelaySeconds',
  'FifoQueue',
  'FifoThroughputLimit',
  'KmsDataKeyReusePeriodSeconds',
  'KmsMasterKeyId',
  'MaximumMessageSize',
  'MessageRetentionPeriod',
  'ReceiveMessageWaitTimeSeconds',
  'RedriveAllowPolicy',
  'RedrivePolicy',
  'SqsManagedSseEnabled',
  'VisibilityTimeout',
]);

/** Maps resolved `AWS::SQS::Queue` properties to a queue name and CreateQueue attributes. */
export function queueFromCloudFormation(props: Record<string, unknown>, where: string): { name: string; attributes: Record<string, string> } {
  const attributes: Record<string, string> = {};
  for (const [key, value] of Object.entries(props)) {
    if (key === 'QueueName' || key === 'Tags') continue;
    if (!QUEUE_ATTRIBUTES.has(key)) throw new Error(`${where}.${key} is not mirrored by local/resources.ts; teach it this property`);
    // The SQS API takes every attribute as a string; policies as JSON documents.
    attributes[key] = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' ? String(value) : JSON.stringify(value);
  }
  return { name: str(props, 'QueueName', where), attributes };
}

// ---------------------------------------------------------------------------------------------
// Creation

function errorName(err: unknown): string {
  return err instanceof Error ? err.name : '';
}

async function waitTableActive(dynamo: DynamoDBClient, tableName: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { Table } = await dynamo.send(new DescribeTableCommand({ TableName: tableName }));
    const indexesActive = (Table?.GlobalSecondaryIndexes ?? []).every((gsi) => gsi.IndexStatus === undefined || gsi.IndexStatus === 'ACTIVE');
    if (Table?.TableStatus === 'ACTIVE' && indexesActive) return;
    if (Date.now() > deadline) throw new Error(`table ${tableName} not ACTIVE after 30 s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Turns TTL on as CloudFormation would. Returns false when the engine lacks the API
 * (dynalite answers UnknownOperationException): harmless locally, because every read in
 * lib/store filters items whose `expiresAtSec` has passed (AWS deletes them lazily too).
 */
async function enableTtl(dynamo: DynamoDBClient, tableName: string, ttl: TtlSpec): Promise<boolean> {
  try {
    const current = await dynamo.send(new DescribeTimeToLiveCommand({ TableName: tableName }));
    const desc = current.TimeToLiveDescription;
    if (desc?.TimeToLiveStatus === 'ENABLED' && desc.AttributeName === ttl.attributeName) return true;
    await dynamo.send(
      new UpdateTimeToLiveCommand({
        TableName: tableName,
        TimeToLiveSpecification: { AttributeName: ttl.attributeName, Enabled: ttl.enabled },
      }),
    );
    return ttl.enabled;
  } catch (err) {
    if (errorName(err) === 'UnknownOperationException') return false;
    throw err;
  }
}

async function createQueue(sqs: SQSClient, name: string, attributes: Record<string, string>): Promise<{ url: string; arn: string }> {
  let url: string | undefined;
  try {
    url = (await sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl;
  } catch (err) {
    // Same name, different settings (e.g. another visibility override): keep the queue, update
    // what may change. FifoQueue cannot change, so it is left out.
    // The SDK names it QueueNameExists, or by the query-compatible code
    // AWS.SimpleQueueService.QueueNameExists (what fauxqs sends, like SQS's x-amzn-query-error).
    if (!(err instanceof QueueNameExists) && !errorName(err).endsWith('QueueNameExists')) throw err;
    url = (await sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
    if (url === undefined) throw err;
    // fauxqs takes the high-throughput FIFO settings at creation only (SetQueueAttributes
    // answers InvalidAttributeName for them), and an existing local queue already has them.
    const fixed = new Set(['FifoQueue', 'DeduplicationScope', 'FifoThroughputLimit']);
    const mutable = Object.fromEntries(Object.entries(attributes).filter(([name]) => !fixed.has(name)));
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: mutable }));
  }
  if (url === undefined) throw new Error(`CreateQueue ${name} returned no QueueUrl`);
  const attrs = await sqs.send(new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }));
  const arn = attrs.Attributes?.QueueArn;
  if (arn === undefined) throw new Error(`queue ${name} has no QueueArn`);
  return { url, arn };
}

/** Default location of the CloudFormation resource files. */
export const INFRA_DIR = join(__dirname, '..', 'lib', 'infra');

/**
 * Creates (idempotently) the table from lib/infra/table.json and the FIFO job queue + DLQ
 * from queue.json / dead-letter-queue.json, with the DLQ's real ARN in the RedrivePolicy.
 */
export async function createResources(opts: CreateResourcesOptions): Promise<LocalResources> {
  const infraDir = opts.infraDir ?? INFRA_DIR;
  const custom = { tableName: opts.tableName, queueName: opts.queueName, deadLetterQueueName: opts.deadLetterQueueName };
  const dynamo = new DynamoDBClient(awsClientConfig(opts.dynamoEndpoint, opts.region));
  const sqs = new SQSClient(awsClientConfig(opts.sqsEndpoint, opts.region));
  try {
    // Table
    const tableProps = resolveTemplate(readResource(infraDir, 'table.json', 'AWS::DynamoDB::Table'), { custom, attributes: {} }, 'Table');
    if (!isRecord(tableProps)) throw new Error('table.json: Properties must be an object');
    const table = tableFromCloudFormation(tableProps);
    const tableName = table.input.TableName ?? opts.tableName;
    try {
      await dynamo.send(new CreateTableCommand(table.input));
    } catch (err) {
      if (errorName(err) !== 'ResourceInUseException') throw err;
    }
    await waitTableActive(dynamo, tableName);
    const ttlEnabled = table.ttl ? await enableTtl(dynamo, tableName, table.ttl) : false;

    // Dead-letter queue first: the job queue's RedrivePolicy needs its ARN.
    const dlqProps = resolveTemplate(readResource(infraDir, 'dead-letter-queue.json', 'AWS::SQS::Queue'), { custom, attributes: {} }, 'DeadLetterQueue');
    if (!isRecord(dlqProps)) throw new Error('dead-letter-queue.json: Properties must be an object');
    const dlqDef = queueFromCloudFormation(dlqProps, 'DeadLetterQueue');
    const dlq = await createQueue(sqs, dlqDef.name, dlqDef.attributes);

    const queueProps = resolveTemplate(
      readResource(infraDir, 'queue.json', 'AWS::SQS::Queue'),
      { custom, attributes: { DeadLetterQueue: { Arn: dlq.arn, QueueName: dlqDef.name } } },
      'JobQueue',
    );
    if (!isRecord(queueProps)) throw new Error('queue.json: Properties must be an object');
    const queueDef = queueFromCloudFormation(queueProps, 'JobQueue');
    if (opts.visibilityTimeoutSec !== undefined) queueDef.attributes.VisibilityTimeout = String(opts.visibilityTimeoutSec);
    const queue = await createQueue(sqs, queueDef.name, queueDef.attributes);

    return { tableName, queueUrl: queue.url, queueArn: queue.arn, deadLetterQueueUrl: dlq.url, deadLetterQueueArn: dlq.arn, ttlEnabled };
  } finally {
    dynamo.destroy();
    sqs.destroy();
  }
}
