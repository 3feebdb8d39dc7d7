import winston from 'winston';
import type { Config } from './config.js';

export type Logger = winston.Logger;

/**
 * JSON lines in production (one event per line, for the log pipeline); short readable
 * lines elsewhere. Lines about a batch carry `batch_id` (and `row` where it applies).
 */
export function createLogger(config: Pick<Config, 'LOG_LEVEL' | 'NODE_ENV'>, transport?: winston.transport): Logger {
  // Winston formats every line (timestamp, JSON) before its transport drops those below the
  // level: drop them first, so an info line costs next to nothing at LOG_LEVEL=warn.
  const atLevel = winston.format((info) => (logger.isLevelEnabled(info.level) ? info : false))();
  const format =
    config.NODE_ENV === 'production'
      ? winston.format.combine(atLevel, winston.format.timestamp(), winston.format.json())
      : winston.format.combine(
          atLevel,
          winston.format.timestamp({ format: 'HH:mm:ss.SSS' }),
          winston.format.printf(({ timestamp, level, message, ...meta }) => {
            const rest = Object.keys(meta).length > 0 ? ` ${JSON.stringify(meta)}` : '';
            return `${String(timestamp)} ${level} ${String(message)}${rest}`;
          }),
        );
  const logger = winston.createLogger({
    level: config.LOG_LEVEL,
    format,
    transports: [transport ?? new winston.transports.Console()],
  });
  return logger;
}
