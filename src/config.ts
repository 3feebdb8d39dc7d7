import { z } from 'zod';
import { MAX_ROWS_LIMIT } from './bulk/directoryBatches.js';

/**
 * Every setting of the service, read from the environment once at start-up.
 * This is the only module that reads process.env; everything else is handed a Config.
 * Each variable is documented in .env.example and in README's config table
 * (tests/deploy.test.ts fails when one is missing there).
 */
// Whole decimal numbers only: z.coerce would read " " as 0 and "0x10" as 16.
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^\d+$/, {
      error: max === Number.MAX_SAFE_INTEGER ? `must be a whole number, at least ${min}` : `must be a whole number from ${min} to ${max}`,
    })
    .transform(Number)
    .pipe(z.number().min(min, { error: `must be at least ${min}` }).max(max, { error: `must be at most ${max}` }));

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: int(0, 65535).default(3000),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']).default('info'),
  DATABASE_PATH: z.string().min(1).default('./data/hospital-bulk.db'),
  /** PostgreSQL instead of the SQLite file: postgres://user:password@host:5432/db (sslmode in the URL). */
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\/\S+$/, { error: 'must be a postgres:// or postgresql:// URL' })
    .optional(),
  /** How long a batch's lease lasts without renewal before another instance may take it over. */
  BATCH_LEASE_MS: int(100).default(30_000),
  /** Finish batches a stop left unfinished (crash, SIGTERM, deploy) without waiting for a resume by hand. */
  AUTO_RESUME: z
    .enum(['true', 'false'], { error: 'must be true or false' })
    .default('true')
    .transform((value) => value === 'true'),
  /** This instance's name in leases and logs; a random one when unset. */
  INSTANCE_ID: z.string().regex(/^[\w.:-]{1,100}$/, { error: 'must be 1 to 100 letters, digits, or . _ : -' }).optional(),

  HOSPITAL_API_BASE_URL: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .default('https://hospital-directory.onrender.com'),
  /** Per attempt: the directory sleeps ~5 s per create and may be cold. */
  UPSTREAM_TIMEOUT_MS: int(1).default(90_000),
  UPSTREAM_MAX_ATTEMPTS: int(1, 10).default(3),
  UPSTREAM_RETRY_BASE_MS: int(0).default(2_000),
  UPSTREAM_RETRY_MAX_MS: int(0).default(30_000),
  /** How long to wait before reading the batch to settle a create whose answer was lost. */
  UPSTREAM_SETTLE_MS: int(0).default(8_000),
  WARMUP_TIMEOUT_MS: int(1).default(120_000),
  UPSTREAM_CREATE_RATE_PER_MIN: int(1, 30).default(30),
  UPSTREAM_RATE_WINDOW_MS: int(100).default(60_000),
  /** Creates of one batch in flight at once: 1 is row by row, in file order (the default). */
  UPSTREAM_CONCURRENCY: int(1, 20).default(1),

  /** Consecutive rows lost to transport failures before a batch stops sending (fail fast). */
  CIRCUIT_FAILURE_THRESHOLD: int(1).default(3),
  /** `rollback` deletes a failed batch upstream at once; `keep` leaves it for POST /batches/:id/resume. */
  ON_FAILURE: z.enum(['keep', 'rollback']).default('keep'),
  /** On SIGTERM/SIGINT, how long the row in flight may take before the batch is marked interrupted. */
  SHUTDOWN_GRACE_MS: int(0).default(10_000),

  /** When set, every API route needs `Authorization: Bearer <API_KEY>`; production refuses to start without it. */
  API_KEY: z.string().min(16, { error: 'must be at least 16 characters (use a long random secret)' }).optional(),
  /**
   * Named keys, `name:key,name:key`: several are valid at once (rotate one without downtime), and
   * each batch and action records the name of the key that made it. API_KEY stays valid, unnamed.
   */
  API_KEYS: z
    .string()
    .transform((value, ctx) => {
      const keys: { name: string; key: string }[] = [];
      for (const pair of value.split(',').map((part) => part.trim()).filter(Boolean)) {
        const colon = pair.indexOf(':');
        const name = colon < 0 ? '' : pair.slice(0, colon).trim();
        const key = colon < 0 ? '' : pair.slice(colon + 1).trim();
        // The messages name the pair by its position and name only: never the key.
        if (!/^[\w.-]{1,64}$/.test(name)) {
          ctx.addIssue({ code: 'custom', message: `pair ${keys.length + 1} must be name:key with a name of 1 to 64 letters, digits, or . _ -` });
          return z.NEVER;
        }
        if (key.length < 16) {
          ctx.addIssue({ code: 'custom', message: `the key named ${name} must be at least 16 characters (use a long random secret)` });
          return z.NEVER;
        }
        if (keys.some((other) => other.name === name)) {
          ctx.addIssue({ code: 'custom', message: `the name ${name} is given twice` });
          return z.NEVER;
        }
        keys.push({ name, key });
      }
      return keys;
    })
    .optional(),
  /** The explicit opt-out for a production deployment whose own proxy or platform authenticates callers. */
  ALLOW_NO_API_KEY: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false').transform((value) => value === 'true'),
  /** Announce every batch that reaches a final state with a signed POST here (operator-configured only). */
  WEBHOOK_URL: z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' }).optional(),
  /** The HMAC-SHA256 key of the Hospital-Bulk-Signature header; required with WEBHOOK_URL. */
  WEBHOOK_SECRET: z.string().min(16, { error: 'must be at least 16 characters (use a long random secret)' }).optional(),
  /** The first retry's delay; each next one doubles (at most an hour apart), until a day has passed. */
  WEBHOOK_RETRY_BASE_MS: int(1).default(10_000),
  /** How often each instance looks for deliveries that are due. */
  WEBHOOK_POLL_MS: int(10).default(2_000),
  /** Uploads, resumes and rollbacks per client IP per minute: each spends the directory's create quota. */
  UPLOAD_RATE_PER_MIN: int(1).default(10),
  /** Dry runs per client IP per minute: each costs one paced directory read, not a batch. */
  VALIDATE_RATE_PER_MIN: int(1).default(60),
  /** Batches queued or running at once across all clients; more answer 503. */
  MAX_ACTIVE_BATCHES: int(1).default(5),
  /** Time allowed to RECEIVE a whole request (slow-drip uploads); the response may take as long as a batch needs. */
  REQUEST_TIMEOUT_MS: int(1000).default(60_000),

  /** Rows per upload; above 20, a file is created as directory batches of 20 (src/bulk/directoryBatches.ts). */
  MAX_ROWS: int(1, MAX_ROWS_LIMIT).default(20),
  MAX_UPLOAD_BYTES: int(1).default(1_048_576),
});

export type Config = z.infer<typeof configSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Variables whose values are never echoed, whatever is wrong with them. */
const SECRET_VARIABLES = new Set(['API_KEY', 'API_KEYS', 'WEBHOOK_SECRET']);

/** Parses the environment; throws ConfigError naming every bad variable and what it allows. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable (FOO= in a .env file) means "use the default", not "the empty string".
  const present = Object.fromEntries(
    Object.entries(env)
      .filter((entry): entry is [string, string] => entry[1] !== undefined && entry[1].trim() !== '')
      .map(([name, value]) => [name, value.trim()]),
  );
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      return `${name}=${shown(name, env[name])}: ${issue.message}`;
    });
    throw new ConfigError(`Invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  assertApiKeyInProduction(parsed.data);
  if (parsed.data.WEBHOOK_URL !== undefined && parsed.data.WEBHOOK_SECRET === undefined) {
    throw new ConfigError('Invalid configuration:\n  WEBHOOK_SECRET is not set: WEBHOOK_URL needs it to sign every delivery (at least 16 characters).');
  }
  return parsed.data;
}

/** Secure by default: a public production URL without a key would let anyone spend the directory's quota. */
function assertApiKeyInProduction(config: Config): void {
  if (config.NODE_ENV !== 'production' || apiKeys(config).length > 0 || config.ALLOW_NO_API_KEY) return;
  throw new ConfigError(
    'Invalid configuration:\n  API_KEY is not set (nor API_KEYS), and NODE_ENV=production refuses to start with the API open to anyone. ' +
      'Set API_KEY to a long random secret (at least 16 characters), or set ALLOW_NO_API_KEY=true if this deployment ' +
      'is behind its own authentication.',
  );
}

/**
 * A value as a config error may show it: a secret only by its length, a URL without its
 * password (a future DATABASE_URL's credentials must not reach a deploy log either).
 */
function shown(name: string, value: string | undefined): string {
  if (value === undefined) return 'undefined';
  if (SECRET_VARIABLES.has(name)) return `<hidden, ${value.length} characters>`;
  return JSON.stringify(withoutPassword(value));
}

// A regex, not new URL(): a URL too malformed to parse must lose its password too.
const withoutPassword = (value: string) => value.replace(/(\/\/[^/@\s:]*:)[^@]*@/g, '$1***@');

/** Every valid key: API_KEYS by name, and API_KEY unnamed (`name` null). Empty: the API is open. */
export function apiKeys(config: Pick<Config, 'API_KEY' | 'API_KEYS'>): { name: string | null; key: string }[] {
  return [...(config.API_KEYS ?? []), ...(config.API_KEY === undefined ? [] : [{ name: null, key: config.API_KEY }])];
}
