/**
 * The settings `npm start` adds so the simulator can play every vendor.
 *
 * A channel the developer configured keeps its settings (the simulator signs with them); a
 * channel with none of its secrets set gets local ones here, and its outbound API base points
 * at the simulator's stand-ins. Nothing here is deployed: only local/start.ts calls it.
 */

/** Local WeChat settings: the token is the one the README's curl example uses. */
export const LOCAL_WECHAT = {
  WECHAT_TOKEN: 'local-dev-token',
  WECHAT_APP_ID: 'wx0000000000local',
  WECHAT_APP_SECRET: 'local-wechat-app-secret',
  // Any 43 characters of base64 work; this is the example key of Tencent's WXBizMsgCrypt sample.
  WECHAT_ENCODING_AES_KEY: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG',
  // Compatible mode (兼容模式): with a key set the gateway refuses plaintext unless allowed, and the
  // simulator sends both (its safe-mode switch), as does the README's plaintext curl example.
  WECHAT_ALLOW_PLAINTEXT: '1',
} as const;

/** Local WhatsApp (Meta Cloud API) settings. */
export const LOCAL_WHATSAPP = {
  WHATSAPP_VERIFY_TOKEN: 'local-verify-token',
  WHATSAPP_APP_SECRET: 'local-meta-app-secret',
  WHATSAPP_ACCESS_TOKEN: 'local-graph-access-token',
  WHATSAPP_PHONE_NUMBER_ID: '100000000000001',
} as const;

/** The re-engagement template of the simulated WhatsApp account. */
export const LOCAL_REENGAGE_TEMPLATE = 'local_reengage';

/** Local Twilio settings (the account SID only has to look like one). */
export const LOCAL_TWILIO = {
  TWILIO_ACCOUNT_SID: 'AC00000000000000000000000000000001',
  TWILIO_AUTH_TOKEN: 'local-twilio-auth-token',
  TWILIO_FROM: '+15550001000',
} as const;

type Env = Readonly<Record<string, string | undefined>>;

function unset(env: Env, names: readonly string[]): boolean {
  return names.every((name) => (env[name] ?? '').trim() === '');
}

/** Which channels the simulator configured itself (their outbound calls reach it). */
export interface SimulatedChannels {
  wechat: boolean;
  whatsapp: boolean;
  twilio: boolean;
}

/**
 * The variables to add to `env` so every channel works locally: local secrets for channels
 * with none set, their API bases at `simulatorUrl`, and `PUBLIC_BASE_URL` (which Twilio signs)
 * at the gateway when it is unset.
 */
export function simulatorEnv(env: Env, simulatorUrl: string, gatewayUrl: string): { add: Record<string, string>; simulated: SimulatedChannels } {
  const add: Record<string, string> = {};
  const simulated: SimulatedChannels = { wechat: false, whatsapp: false, twilio: false };
  if (unset(env, ['WECHAT_TOKEN', 'WECHAT_APP_ID', 'WECHAT_APP_SECRET', 'WECHAT_ENCODING_AES_KEY'])) {
    Object.assign(add, LOCAL_WECHAT, { WECHAT_API_BASE: `${simulatorUrl}/wechat-api` });
    simulated.wechat = true;
  }
  if (unset(env, Object.keys(LOCAL_WHATSAPP))) {
    Object.assign(add, LOCAL_WHATSAPP, { WHATSAPP_GRAPH_BASE: `${simulatorUrl}/graph` });
    // The simulated account has a re-engagement template, so the 24 h fallback can be seen.
    if (unset(env, ['WHATSAPP_REENGAGE_TEMPLATE'])) add.WHATSAPP_REENGAGE_TEMPLATE = LOCAL_REENGAGE_TEMPLATE;
    simulated.whatsapp = true;
  }
  if (unset(env, ['TWILIO_ACCOUNT_SID', 'TWILIO_AUTH_TOKEN', 'TWILIO_FROM', 'TWILIO_MESSAGING_SERVICE_SID'])) {
    Object.assign(add, LOCAL_TWILIO, { TWILIO_API_BASE: `${simulatorUrl}/twilio` });
    if (unset(env, ['PUBLIC_BASE_URL'])) add.PUBLIC_BASE_URL = gatewayUrl;
    simulated.twilio = true;
  }
  return { add, simulated };
}
