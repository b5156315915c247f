/**
 * Jest setup: dummy AWS keys in the environment (unless set), as the local starter does.
 * lib/ never configures credentials: its clients use the SDK's default provider chain,
 * which in AWS finds the function's role and here finds these (the stand-ins accept any
 * keys). Without them the chain would look for a profile, SSO or instance metadata.
 */
if (!process.env.AWS_ACCESS_KEY_ID || !process.env.AWS_SECRET_ACCESS_KEY) {
  process.env.AWS_ACCESS_KEY_ID = 'local';
  process.env.AWS_SECRET_ACCESS_KEY = 'local';
  delete process.env.AWS_SESSION_TOKEN;
}
