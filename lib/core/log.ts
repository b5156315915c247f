import { Logger } from '@aws-lambda-powertools/logger';
import type { Log } from './types';

/**
 * Structured JSON logs (Powertools Logger): one line per event with the service name,
 * level and cold-start flag, searchable in CloudWatch Logs Insights.
 */
export function createLog(serviceName: string, level: string): Log {
  const logger = new Logger({ serviceName, logLevel: level.toUpperCase() === 'DEBUG' ? 'DEBUG' : level.toUpperCase() === 'WARN' ? 'WARN' : level.toUpperCase() === 'ERROR' ? 'ERROR' : 'INFO' });
  return {
    debug: (message, extra) => logger.debug(message, extra ?? {}),
    info: (message, extra) => logger.info(message, extra ?? {}),
    warn: (message, extra) => logger.warn(message, extra ?? {}),
    error: (message, extra) => logger.error(message, extra ?? {}),
  };
}
