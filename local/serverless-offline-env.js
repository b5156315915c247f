// @ts-check
'use strict';
/**
 * Serverless Framework plugin that only acts on `serverless offline` (local/start.ts).
 *
 * Why it exists: serverless-offline gives each function `provider.environment` after
 * rendering only Fn::Join / Fn::Sub, so `QUEUE_URL: { Ref: JobQueue }` reaches the handlers
 * as "[object Object]"; and variables that exist only locally (DYNAMODB_ENDPOINT,
 * SQS_ENDPOINT) never reach them, because provider.environment wins over the process
 * environment and only AWS_* variables are copied through.
 *
 * What it does, in `before:offline:start:init` (after serverless-esbuild has bundled, before
 * serverless-offline creates its functions):
 * - `SLS_OFFLINE_ENV_FROM_STDIN=1`: waits for one JSON line of
 *   `{"env": {"NAME": "value"}, "functions": {"worker": {"NAME": "value"}}}` on stdin: `env`
 *   goes into provider.environment (start.ts sends the table/queue/endpoints this way, so the
 *   CLI can boot and bundle while the emulators are still starting), `functions` into each
 *   function's own environment (the secrets that function would read from SSM when deployed,
 *   and no others, so a function sees locally what it sees in Lambda).
 * - `SLS_OFFLINE_ENV_OVERRIDES=A,B`: copies those names from the process environment.
 * - Values from stdin or the overrides also replace a function's own `environment` entry of
 *   the same name (per-function settings such as TABLE_NAME, QUEUE_URL, PUBLIC_BASE_URL,
 *   which serverless.yml gives as CloudFormation expressions).
 * - Drops `SSM_SECRETS_PATH`: offline never reads SSM Parameter Store; the handlers read their
 *   secrets from the environment and `.env`, as `npm start` and the tests do.
 * - `SLS_OFFLINE_EXIT_WITH_PARENT=1`: stops serverless offline (SIGINT to itself, its normal
 *   graceful path) when stdin reaches EOF. start.ts holds the other end of that pipe, so
 *   even if start.ts is killed outright, offline does not keep the port busy.
 * Any value still a CloudFormation expression afterwards is reported.
 *
 * Plain CommonJS on purpose: the Serverless CLI `require()`s plugins without a TypeScript
 * loader, and `serverless package`/`deploy` load it too (where it does nothing).
 */

class OfflineLocalEnvironment {
  /**
   * @param {{ service: { provider: { environment?: Record<string, unknown> }, functions?: Record<string, { environment?: Record<string, unknown> }> } }} serverless
   * @param {unknown} _options
   * @param {{ log: { notice(message: string): void; warning(message: string): void } }} utils
   */
  constructor(serverless, _options, utils) {
    this.serverless = serverless;
    this.log = utils.log;
    /** @type {((line: string) => void) | undefined} */
    this.onLine = undefined;
    this.stdinBuffer = '';
    this.parentGone = false;
    this.hooks = {
      'before:offline:start:init': () => this.apply(),
    };
  }

  async apply() {
    const fromStdin = process.env.SLS_OFFLINE_ENV_FROM_STDIN === '1';
    if (fromStdin || process.env.SLS_OFFLINE_EXIT_WITH_PARENT === '1') this.watchStdin();
    const provider = this.serverless.service.provider;
    /** @type {Record<string, unknown>} */
    const environment = { ...(provider.environment ?? {}) };
    /** @type {Record<string, string>} */
    const given = {};
    /** @type {Record<string, Record<string, string>>} */
    const perFunction = {};
    if (fromStdin) {
      const parsed = JSON.parse(await this.nextLine());
      for (const [name, value] of Object.entries(parsed.env ?? {})) {
        if (typeof value === 'string') given[name] = value;
      }
      for (const [fnName, values] of Object.entries(parsed.functions ?? {})) {
        perFunction[fnName] = {};
        for (const [name, value] of Object.entries(values ?? {})) {
          if (typeof value === 'string') perFunction[fnName][name] = value;
        }
      }
    }
    const names = (process.env.SLS_OFFLINE_ENV_OVERRIDES ?? '')
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '');
    for (const name of names) {
      const value = process.env[name];
      if (value !== undefined) given[name] = value;
    }
    Object.assign(environment, given);
    delete environment.SSM_SECRETS_PATH;
    const functions = Object.entries(this.serverless.service.functions ?? {});
    for (const [key, fn] of functions) {
      if (perFunction[key]) fn.environment = { ...(fn.environment ?? {}), ...perFunction[key] };
      if (!fn.environment) continue;
      for (const [name, value] of Object.entries(given)) {
        if (name in fn.environment) fn.environment[name] = value;
      }
      delete fn.environment.SSM_SECRETS_PATH;
    }
    const scopes = [['provider', environment], ...functions.map(([key, fn]) => [key, fn.environment ?? {}])];
    for (const [scope, env] of scopes) {
      for (const [name, value] of Object.entries(env)) {
        if (typeof value === 'object' && value !== null) {
          this.log.warning(`offline: ${name} (${scope}) is a CloudFormation expression; handlers will see "[object Object]"`);
        }
      }
    }
    provider.environment = environment;
    // From here on stdin only signals the parent's death; it must not keep offline alive.
    if (process.env.SLS_OFFLINE_EXIT_WITH_PARENT === '1') process.stdin.unref();
    else process.stdin.pause();
  }

  /** @returns {Promise<string>} the first line on stdin */
  nextLine() {
    return new Promise((resolve, reject) => {
      const newline = this.stdinBuffer.indexOf('\n');
      if (newline !== -1) {
        resolve(this.stdinBuffer.slice(0, newline));
        return;
      }
      if (this.parentGone) {
        reject(new Error('stdin closed before the local environment arrived'));
        return;
      }
      this.onLine = resolve;
    });
  }

  watchStdin() {
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (chunk) => {
      this.stdinBuffer += String(chunk);
      const newline = this.stdinBuffer.indexOf('\n');
      if (newline !== -1 && this.onLine) {
        const resolve = this.onLine;
        this.onLine = undefined;
        resolve(this.stdinBuffer.slice(0, newline));
      }
    });
    const gone = () => {
      if (this.parentGone) return;
      this.parentGone = true;
      if (process.env.SLS_OFFLINE_EXIT_WITH_PARENT !== '1') return;
      this.log.notice('offline: parent process gone, shutting down');
      process.kill(process.pid, 'SIGINT');
      // If the graceful path hangs (or offline has not started yet), do not linger.
      setTimeout(() => process.exit(1), 5000).unref();
    };
    process.stdin.on('end', gone);
    process.stdin.on('close', gone);
    process.stdin.on('error', gone);
    process.stdin.resume();
  }
}

module.exports = OfflineLocalEnvironment;
