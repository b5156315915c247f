/**
 * What can go wrong getting a WeChat access token, as typed errors: each `errcode` of the
 * token endpoint (https://developers.weixin.qq.com/doc/offiaccount/Basic_Information/getStableAccessToken.html)
 * read as an operator-facing message and whether a retry can help.
 *
 * @module
 */

/** Why a token could not be had. */
export type WeChatTokenErrorCode =
  | 'ip_not_allowed'
  | 'invalid_appid'
  | 'invalid_secret'
  | 'credentials_missing'
  | 'quota_exceeded'
  | 'force_refresh_limited'
  | 'rejected'
  | 'busy'
  | 'timeout'
  | 'network'
  | 'http'
  | 'bad_response'
  | 'upstream';

/**
 * A token failure. The message names the cause (and the fix, for configuration errors);
 * it never contains the AppSecret or a token.
 */
export class WeChatTokenError extends Error {
  constructor(
    message: string,
    readonly code: WeChatTokenErrorCode,
    /** Whether trying again later (SQS redelivery) may help. */
    readonly retryable: boolean,
    /** WeChat's `errcode`, when WeChat answered with one. */
    readonly errcode?: number,
  ) {
    super(message);
    this.name = 'WeChatTokenError';
  }
}

/** Pure classification of a token endpoint's `errcode`. Exported for tests. */
export function tokenErrorFor(errcode: number, errmsg: string): WeChatTokenError {
  const said = errmsg === '' ? '' : ` WeChat said: "${errmsg}".`;
  switch (errcode) {
    case 40164:
    case 89503:
    case 89501:
      return new WeChatTokenError(
        `WeChat refused the access-token request because the caller's IP is not on the Official Account's IP allow-list (errcode ${errcode}). ` +
          'Add the egress IP to mp.weixin.qq.com → Settings and Development → Basic Configuration → IP whitelist; on Lambda that needs a fixed egress IP (VPC with a NAT gateway and an Elastic IP).' +
          said,
        'ip_not_allowed',
        false,
        errcode,
      );
    case 40013:
      return new WeChatTokenError(
        `WeChat says WECHAT_APP_ID is not a valid AppID (errcode 40013). Copy the AppID from mp.weixin.qq.com → Settings and Development → Basic Configuration.${said}`,
        'invalid_appid',
        false,
        errcode,
      );
    case 40125:
    case 40001:
      // For the token endpoints 40001 means "AppSecret wrong or not this account's".
      return new WeChatTokenError(
        `WeChat rejected WECHAT_APP_SECRET (errcode ${errcode}: invalid AppSecret, or it belongs to another account). Reset it in mp.weixin.qq.com → Basic Configuration and update the setting.${said}`,
        'invalid_secret',
        false,
        errcode,
      );
    case 41002:
    case 41004:
      return new WeChatTokenError(
        `WeChat says the ${errcode === 41002 ? 'AppID' : 'AppSecret'} is missing from the token request (errcode ${errcode}): set WECHAT_APP_ID and WECHAT_APP_SECRET.${said}`,
        'credentials_missing',
        false,
        errcode,
      );
    case 45009:
      return new WeChatTokenError(
        `WeChat's daily limit for the token API is used up (errcode 45009); it resets at midnight China time.${said}`,
        'quota_exceeded',
        false,
        errcode,
      );
    case 45011:
    case -1:
      return new WeChatTokenError(`WeChat is busy or rate-limiting the token API (errcode ${errcode}); try again shortly.${said}`, 'busy', true, errcode);
    default:
      return new WeChatTokenError(`WeChat's token API failed with errcode ${errcode}.${said}`, 'upstream', false, errcode);
  }
}
