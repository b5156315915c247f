/**
 * The emulator starters: real dynalite / DynamoDB Local / fauxqs, on 127.0.0.1, and
 * nothing left running after stop().
 *
 * dynalite and DynamoDB Local start in this process (dynalite is CommonJS; DynamoDB Local
 * is a java child). fauxqs is ESM-only and Jest cannot load it, so SQS is exercised through
 * the child-process host that local/stack.ts uses.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { ListQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { freePort, javaOnPath, startDynamo } from '../../local/emulators';
import { spawnEmulators } from '../../local/emulator-process';
import { awsClientConfig } from '../../local/resources';

/** True when something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function portOf(endpoint: string): number {
  return Number(new URL(endpoint).port);
}

/** Command lines of running processes (Linux /proc), to prove a child is gone. */
function processCommandLines(): string[] {
  if (!existsSync('/proc')) return [];
  const out: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      out.push(readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' '));
    } catch {
      // exited while we looked
    }
  }
  return out;
}

async function listTables(endpoint: string): Promise<string[]> {
  const client = new DynamoDBClient(awsClientConfig(endpoint, 'us-east-1'));
  try {
    return (await client.send(new ListTablesCommand({}))).TableNames ?? [];
  } finally {
    client.destroy();
  }
}

describe('javaOnPath / freePort', () => {
  it('finds no java on an empty PATH', () => {
    expect(javaOnPath({ PATH: '' })).toBe(false);
  });

  it('hands out a bindable loopback port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(await listening(port)).toBe(false);
  });
});

describe('startDynamo', () => {
  it('runs dynalite in memory on 127.0.0.1 and frees the port on stop', async () => {
    // Arrange / Act
    const started = Date.now();
    const dynamo = await startDynamo({ engine: 'dynalite', port: 0 });
    const startMs = Date.now() - started;
    // Assert
    expect(dynamo.engine).toBe('dynalite');
    expect(dynamo.endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await listTables(dynamo.endpoint)).toEqual([]);
    await dynamo.stop();
    expect(await listening(portOf(dynamo.endpoint))).toBe(false);
    // A second stop() is harmless (shutdown paths may race).
    await dynamo.stop();
    process.stdout.write(`dynalite start: ${startMs} ms\n`);
  });

  // DynamoDB Local has no bind-address option (it listens on every interface), and test
  // servers must stay on 127.0.0.1: its tests run only when asked, TEST_DYNAMODB_LOCAL=1.
  const withJava = javaOnPath() && process.env.TEST_DYNAMODB_LOCAL === '1' ? it : it.skip;
  withJava('runs DynamoDB Local (java) and awaits the JVM exit on stop', async () => {
    const started = Date.now();
    const dynamo = await startDynamo({ engine: 'dynamodb-local' });
    const startMs = Date.now() - started;
    const port = portOf(dynamo.endpoint);
    expect(dynamo.engine).toBe('dynamodb-local');
    expect(await listTables(dynamo.endpoint)).toEqual([]);
    expect(processCommandLines().some((cmd) => cmd.includes('DynamoDBLocal.jar') && cmd.includes(`-port ${port}`))).toBe(true);

    await dynamo.stop();

    expect(await listening(port)).toBe(false);
    expect(processCommandLines().some((cmd) => cmd.includes('DynamoDBLocal.jar') && cmd.includes(`-port ${port}`))).toBe(false);
    process.stdout.write(`DynamoDB Local start: ${startMs} ms\n`);
  });

  withJava('auto picks DynamoDB Local when java is on PATH', async () => {
    const dynamo = await startDynamo({ engine: 'auto' });
    try {
      expect(dynamo.engine).toBe('dynamodb-local');
    } finally {
      await dynamo.stop();
    }
  });
});

describe('spawnEmulators (child process, as the test stack uses)', () => {
  it('serves DynamoDB and SQS on 127.0.0.1 and leaves nothing running after stop', async () => {
    const started = Date.now();
    const emulators = await spawnEmulators({ engine: 'dynalite' });
    const startMs = Date.now() - started;
    expect(emulators.dynamoEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(emulators.sqsEndpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await listTables(emulators.dynamoEndpoint)).toEqual([]);
    const sqs = new SQSClient(awsClientConfig(emulators.sqsEndpoint, 'us-east-1'));
    const queues = await sqs.send(new ListQueuesCommand({}));
    sqs.destroy();
    expect(queues.QueueUrls ?? []).toEqual([]);

    await emulators.stop();

    expect(await listening(portOf(emulators.dynamoEndpoint))).toBe(false);
    expect(await listening(portOf(emulators.sqsEndpoint))).toBe(false);
    expect(existsSync(`/proc/${emulators.pid}`)).toBe(false);
    process.stdout.write(`emulator child (dynalite + fauxqs) ready: ${startMs} ms\n`);
  });
});
