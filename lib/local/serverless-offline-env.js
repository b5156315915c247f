// @ts-check
'use strict';
/**
 * Serverless Framework plugin, active only for `serverless offline` (lib/local/start.ts).
 *
 * Why it exists: serverless-offline gives each function `provider.environment` after
 * rendering only Fn::Join / Fn::Sub, so `QUEUE_URL: { Ref: JobQueue }` reaches the
 * handlers as "[object Object]"; and variables that exist only locally
 * (DYNAMODB_ENDPOINT, SQS_ENDPOINT) never reach them at all, because provider.environment
 * wins over the process environment and only AWS_* variables are copied through.
 *
 * What it does: before serverless-offline builds its functions, every name listed in
 * `SLS_OFFLINE_ENV_OVERRIDES` (comma-separated, set by start.ts) is copied from the process
 * environment into provider.environment. Any other value that is still a CloudFormation
 * intrinsic is reported, since the handlers would see "[object Object]".
 *
 * With `SLS_OFFLINE_EXIT_WITH_PARENT=1` it also stops serverless offline (SIGINT to itself,
 * its normal graceful path) when stdin reaches EOF: start.ts holds the other end of that
 * pipe, so even if start.ts is killed outright, offline does not keep the port busy.
 *
 * It is plain CommonJS on purpose: the Serverless CLI `require()`s plugins without a
 * TypeScript loader, and `serverless package`/`deploy` load it too (where it does nothing).
 */

class OfflineLocalEnvironment {
  /**
   * @param {{ service: { provider: { environment?: Record<string, unknown> } } }} serverless
   * @param {unknown} _options
   * @param {{ log: { notice(message: string): void; warning(message: string): void } }} utils
   */
  constructor(serverless, _options, utils) {
    this.serverless = serverless;
    this.log = utils.log;
    this.hooks = {
      // serverless-offline reads provider.environment in its `offline:start:init` hook.
      'before:offline:start:init': () => this.apply(),
    };
  }

  apply() {
    const provider = this.serverless.service.provider;
    /** @type {Record<string, unknown>} */
    const environment = { ...(provider.environment ?? {}) };
    const names = (process.env.SLS_OFFLINE_ENV_OVERRIDES ?? '')
      .split(',')
      .map((name) => name.trim())
      .filter((name) => name !== '');
    for (const name of names) {
      const value = process.env[name];
      if (value !== undefined) environment[name] = value;
    }
    for (const [name, value] of Object.entries(environment)) {
      if (typeof value === 'object' && value !== null) {
        this.log.warning(`offline: ${name} is a CloudFormation expression; handlers will see "[object Object]". Add it to SLS_OFFLINE_ENV_OVERRIDES.`);
      }
    }
    provider.environment = environment;
    if (process.env.SLS_OFFLINE_EXIT_WITH_PARENT === '1') this.exitWithParent();
  }

  exitWithParent() {
    let gone = false;
    const onParentGone = () => {
      if (gone) return;
      gone = true;
      this.log.notice('offline: parent process gone, shutting down');
      process.kill(process.pid, 'SIGINT');
      // If the graceful path hangs, do not linger; unref'd so it never delays a clean exit.
      setTimeout(() => process.exit(1), 5000).unref();
    };
    process.stdin.on('end', onParentGone);
    process.stdin.on('close', onParentGone);
    process.stdin.on('error', onParentGone);
    process.stdin.resume();
    // Reading stdin must not be what keeps serverless offline alive.
    process.stdin.unref();
  }
}

module.exports = OfflineLocalEnvironment;
