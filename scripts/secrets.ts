/**
 * `npm run secrets -- --stage prod [--region eu-west-1] [--dry-run]`: writes the secrets set
 * in `.env.<stage>` (or `.env`) and the environment (which wins) to SSM Parameter Store as
 * SecureString parameters under `/llm-gateway/<stage>/`, overwriting. Prints parameter names
 * only, never a value. Uses the shell's AWS credentials; `SSM_ENDPOINT` points it at a
 * stand-in (the tests).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { SECRET_NAMES } from '../lib/config';
import { readDotEnv } from '../local/dotenv';
import { useStandInCredentials } from '../local/resources';
import { createSsmClient, putSecrets } from '../lib/secrets';

/** The parsed command line. */
interface Args {
  stage: string;
  region: string;
  dryRun: boolean;
}

function parseArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): Args {
  let stage = '';
  let region = '';
  let dryRun = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      if (inline !== undefined) return inline;
      i += 1;
      const next = argv[i];
      if (next === undefined) throw new Error(`${flag} needs a value`);
      return next;
    };
    if (flag === '--stage' || flag === '-s') stage = value();
    else if (flag === '--region' || flag === '-r') region = value();
    else if (flag === '--dry-run') dryRun = true;
    else throw new Error(`unknown argument ${arg}`);
  }
  // Stage names as serverless accepts them; the stage becomes part of an SSM path.
  if (!/^[a-zA-Z0-9-]+$/.test(stage)) throw new Error('--stage <name> is required (letters, digits, dashes), e.g. --stage prod');
  return { stage, region: region || env.AWS_REGION?.trim() || 'us-east-1', dryRun };
}

async function main(): Promise<void> {
  const root = process.cwd();
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2), process.env);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\nusage: npm run secrets -- --stage <stage> [--region <region>] [--dry-run]\n`);
    process.exit(2);
  }
  // The same file `serverless deploy --stage <stage>` reads (useDotenv: .env.<stage>, else .env).
  const file = existsSync(join(root, `.env.${args.stage}`)) ? `.env.${args.stage}` : '.env';
  const env = readDotEnv(root, process.env, file);
  const path = `/llm-gateway/${args.stage}`;
  const endpoint = env.SSM_ENDPOINT?.trim() ?? '';
  process.stdout.write(`${args.dryRun ? 'dry run: ' : ''}secrets from ${file} and the environment → SSM ${path}/ in ${args.region}\n`);
  // A stand-in takes any keys; AWS gets the SDK's chain (profile, SSO, role).
  if (endpoint !== '') useStandInCredentials();
  const client = args.dryRun ? undefined : createSsmClient({ region: args.region, endpoint });
  try {
    const result = await putSecrets(client, { path, env, names: SECRET_NAMES, dryRun: args.dryRun, print: (line) => process.stdout.write(`${line}\n`) });
    process.stdout.write(`${result.written.length} ${args.dryRun ? 'to write' : 'written'}, ${result.skipped.length} not set\n`);
  } catch (err) {
    // The SDK's errors name the parameter and the reason (access denied, throttling), not the value.
    process.stderr.write(`${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}\n`);
    process.exitCode = 1;
  } finally {
    client?.destroy();
  }
}

void main();
