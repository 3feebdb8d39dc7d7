import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * nginx's lingering close, for answers given before the request body was read (401, 413,
 * 415, 429…). Many clients (Python's urllib and requests among them) write the whole body
 * before they read anything. If we answered and closed at once, the kernel would reset the
 * connection on the bytes still arriving, and the reset throws away our answer before the
 * client reads it: it sees a broken pipe instead of the 413. So the answer goes out whole,
 * then the rest of the body is read and thrown away, and only then is the connection closed.
 * The limits are nginx's lingering_time and lingering_timeout, plus a cap on bytes: past
 * them the connection is closed anyway (a client that slow or that large may lose the answer).
 */
export const LINGER = { maxBytes: 64 * 1024 * 1024, maxMs: 30_000, idleMs: 5_000 };

/** Whether body bytes of this request may still be on their way, unread by anyone. */
export function hasUnreadBody(req: IncomingMessage): boolean {
  if (req.complete || req.readableEnded || req.destroyed) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Writes the whole answer (status and headers already set on `res`), then reads and discards
 * the rest of the request body within LINGER's limits, then ends the response, which closes
 * the connection (`Connection: close`).
 */
export function answerThenDrain(req: IncomingMessage, res: ServerResponse, body: string): void {
  res.setHeader('Connection', 'close');
  res.setHeader('Content-Length', Buffer.byteLength(body));
  // Not res.end(body): Node closes the socket as soon as an ended response is flushed.
  res.write(body);

  let received = 0;
  const finish = () => {
    clearTimeout(overall);
    clearTimeout(idle);
    req.off('data', onData);
    req.off('end', finish);
    req.off('close', finish);
    if (!res.writableEnded) res.end();
  };
  const overall = setTimeout(finish, LINGER.maxMs).unref();
  const idle = setTimeout(finish, LINGER.idleMs).unref();
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > LINGER.maxBytes) return finish();
    idle.refresh();
  };
  req.on('data', onData);
  req.once('end', finish);
  req.once('close', finish);
  req.resume();
}
