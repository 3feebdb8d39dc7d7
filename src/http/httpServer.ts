import http from 'node:http';
import type { Socket } from 'node:net';
import type { RequestListener } from 'node:http';
import type { Config } from '../config.js';
import { AppError } from '../errors.js';
import { problemDocument } from './problem.js';

/**
 * The HTTP server around the app, as production runs it (src/server.ts) and as tests that
 * need the real server build it: inbound timeouts, and Node's own refusals answered as
 * problem JSON like every other error.
 */
export function createHttpServer(app: RequestListener, config: Pick<Config, 'REQUEST_TIMEOUT_MS'>): http.Server {
  const server = http.createServer(
    {
      // requestTimeout bounds RECEIVING a request (a slow-drip upload), not the answer: a
      // synchronous 20-row upload may take minutes to answer against the real directory.
      requestTimeout: config.REQUEST_TIMEOUT_MS,
      headersTimeout: Math.min(20_000, config.REQUEST_TIMEOUT_MS),
      // Node enforces those timeouts on a sweep (every 30 s by default): sweep often
      // enough that the limit means what it says.
      connectionsCheckingInterval: Math.min(1_000, config.REQUEST_TIMEOUT_MS / 4),
    },
    app,
  );
  // No idle-socket timeout: a synchronous upload's connection is silent until its report.
  server.setTimeout(0);
  server.on('clientError', answerClientError(config));
  return server;
}

/** How long a refused connection may stay open for the client to read the answer. */
const CLOSE_AFTER_MS = 2_000;

/**
 * Node's parser refuses some requests before the app sees them (headers over 16 KB, a
 * control character in a header, a bad Content-Length, Content-Length with
 * Transfer-Encoding, a request not received within REQUEST_TIMEOUT_MS). Node's own answer
 * has no body; this one is problem JSON, then the connection closes.
 */
export function answerClientError(config: Pick<Config, 'REQUEST_TIMEOUT_MS'>) {
  const answered = new WeakSet<Socket>();
  return (error: Error & { code?: string }, socket: Socket): void => {
    // The parser reports every later chunk of a broken connection again: answer once.
    if (answered.has(socket)) return;
    answered.add(socket);
    // Node's own rule (lib/_http_server.js): never write into a response already under way.
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code === 'ECONNRESET' || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const problem = clientProblem(error.code, config.REQUEST_TIMEOUT_MS);
    const body = JSON.stringify(problemDocument(problem));
    socket.end(
      `HTTP/1.1 ${problem.status} ${http.STATUS_CODES[problem.status]}\r\n` +
        'Content-Type: application/problem+json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        'Connection: close\r\n' +
        '\r\n' +
        body,
    );
    // Half-closed: the client reads the answer and closes; one that never does is cut off.
    const timer = setTimeout(() => socket.destroy(), CLOSE_AFTER_MS).unref();
    socket.once('close', () => clearTimeout(timer));
  };
}

function clientProblem(code: string | undefined, requestTimeoutMs: number): AppError {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return new AppError('headers_too_large', 'The request headers are larger than the 16 KB this server accepts in all.');
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new AppError(
        'request_timeout',
        `The request did not arrive in time: the whole request must be received within ${requestTimeoutMs / 1000} s.`,
      );
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new AppError('payload_too_large', 'The chunk extensions of the request body are too large.');
    case 'HPE_INVALID_CONTENT_LENGTH':
      return new AppError('bad_request', 'The Content-Length header is not a whole number of bytes.');
    // llhttp reports Content-Length together with Transfer-Encoding as either code.
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return new AppError(
        'bad_request',
        'The body length is ambiguous or not understood: send either Content-Length or Transfer-Encoding: chunked, not both.',
      );
    case 'HPE_INVALID_HEADER_TOKEN':
      return new AppError('bad_request', 'A header holds a character that is not allowed there (for example a control character).');
    default:
      return new AppError('bad_request', 'The request is not valid HTTP/1.1 and could not be read.');
  }
}
