/** Entry of `npm run dlq` (see dlq.ts). */
import { readDotEnv } from '../local/dotenv';
import { runDlq } from './dlq-command';

void runDlq(process.argv.slice(2), readDotEnv(process.cwd(), process.env), (line) => process.stdout.write(`${line}\n`)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
