import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler, Response } from 'express';
import { rateLimit, type RateLimitInfo, type Store } from 'express-rate-limit';
import helmet from 'helmet';
import { AppError } from '../errors.js';
import { sendProblem } from './problem.js';

/**
 * With keys set (API_KEY, API_KEYS), the API answers only requests carrying
 * `Authorization: Bearer <key>` for one of them, and `res.locals.apiKeyName` names the key
 * (null for API_KEY, or when no key is set). Every key is compared, hashed first, so the
 * time taken says nothing about which key, its length or its content.
 */
export function requireApiKey(keys: readonly { name: string | null; key: string }[]): RequestHandler {
  if (keys.length === 0) {
    return (_req, res, next) => {
      res.locals.apiKeyName = null;
      next();
    };
  }
  const expected = keys.map(({ name, key }) => ({ name, digest: digest(key) }));
  return (req, res, next) => {
    const sent = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '')?.[1];
    if (sent !== undefined) {
      const given = digest(sent);
      let match: { name: string | null } | undefined;
      // No early exit: every key is compared whichever matches.
      for (const candidate of expected) if (timingSafeEqual(given, candidate.digest) && match === undefined) match = candidate;
      if (match !== undefined) {
        res.locals.apiKeyName = match.name;
        return next();
      }
    }
    res.setHeader('WWW-Authenticate', 'Bearer realm="hospital-bulk"');
    throw new AppError(
      'unauthorized',
      sent === undefined ? 'This service needs an API key: send Authorization: Bearer <key>.' : 'The API key is not valid.',
    );
  };
}

/** The name of the API key the request came with (API_KEYS), or null (API_KEY, or no key set); for audit records. */
export function callerName(res: Response): string | null {
  return (res.locals.apiKeyName as string | null | undefined) ?? null;
}

/**
 * A per-client-IP budget per minute for one kind of request, e.g. `limitRate(10, 'uploads,
 * resumes and rollbacks')`. The 429 says exactly when the window resets, in Retry-After and
 * in words. Each call has its own counters: mount one instance on every route that shares a budget.
 * `store` counts across instances (on PostgreSQL); without one, this process counts alone.
 */
export function limitRate(perMinute: number, what: string, store?: Store): RequestHandler {
  return rateLimit({
    windowMs: 60_000,
    limit: perMinute,
    ...(store ? { store } : {}),
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    handler: (req, res) => {
      // express-rate-limit puts its counters on the request (requestPropertyName, 'rateLimit' by default).
      const resetTime = (req as typeof req & { rateLimit?: RateLimitInfo }).rateLimit?.resetTime;
      // Rounded up and at least 1: a client that waits exactly this long is let in.
      const seconds = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + 60_000) - Date.now()) / 1000));
      sendProblem(
        res,
        new AppError(
          'rate_limited',
          `At most ${perMinute} ${what} per minute from one client; try again in ${seconds} second${seconds === 1 ? '' : 's'}.`,
          {},
          { retryAfterSeconds: seconds },
        ),
      );
    },
  });
}

/**
 * helmet's defaults, with a Content-Security-Policy that lets our own page and the
 * Swagger UI at /docs work: scripts and styles from our origin only (Swagger UI sets
 * inline styles), images also as data: URIs, connections to our origin.
 */
export function securityHeaders(): RequestHandler {
  return helmet({
    contentSecurityPolicy: {
      directives: {
        defaultSrc: ["'self'"],
        scriptSrc: ["'self'"],
        styleSrc: ["'self'", "'unsafe-inline'"],
        imgSrc: ["'self'", 'data:'],
        connectSrc: ["'self'"],
        // helmet adds upgrade-insecure-requests by default: over plain HTTP on anything but
        // localhost (a LAN address, demo --serve) the browser would then fetch the page's own
        // scripts over https and show nothing. TLS, where there is any, is the proxy's job.
        upgradeInsecureRequests: null,
      },
    },
  });
}

const digest = (value: string) => createHash('sha256').update(value).digest();
