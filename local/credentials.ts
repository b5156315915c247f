/**
 * The stand-ins' dummy AWS keys. A module of its own, with no imports, so jest's setup can put
 * them in the environment of every test file without loading the AWS SDK.
 *
 * @module
 */

/** Dummy credentials the stand-ins accept; real ones are never needed (nor wanted) locally. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' } as const;

/**
 * Puts {@link LOCAL_CREDENTIALS} in this process's environment unless keys are already
 * there, so the AWS SDK's default provider chain (which lib/ always uses: credentials are
 * never configuration) finds them instead of looking for a profile, SSO or instance
 * metadata. For the local stack, the tests and the scripts pointed at a stand-in.
 */
export function useStandInCredentials(env: NodeJS.ProcessEnv = process.env): void {
  if ((env.AWS_ACCESS_KEY_ID ?? '') === '' || (env.AWS_SECRET_ACCESS_KEY ?? '') === '') {
    env.AWS_ACCESS_KEY_ID = LOCAL_CREDENTIALS.accessKeyId;
    env.AWS_SECRET_ACCESS_KEY = LOCAL_CREDENTIALS.secretAccessKey;
    delete env.AWS_SESSION_TOKEN;
  }
}
