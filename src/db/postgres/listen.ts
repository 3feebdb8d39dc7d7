import pg from 'pg';

/**
 * A dedicated connection LISTENing on `channel` (a NOTIFY is delivered at commit, to every
 * instance listening), calling `onPayload` with each notification's payload. It reconnects
 * a second after a lost connection, until closed.
 */
export async function listen(url: string, channel: string, onPayload: (payload: string) => void): Promise<{ close: () => Promise<void> }> {
  let closed = false;
  let client: pg.Client | null = null;
  const retry = (): void => {
    setTimeout(() => void connect().catch(retry), 1_000).unref();
  };
  const connect = async (): Promise<void> => {
    if (closed) return;
    const next = new pg.Client({ connectionString: url });
    next.on('notification', (message) => {
      if (message.channel === channel && message.payload) onPayload(message.payload);
    });
    next.on('error', () => {
      if (closed) return;
      client = null;
      retry();
    });
    await next.connect();
    await next.query(`LISTEN ${channel}`);
    client = next;
  };
  await connect();
  return {
    async close() {
      closed = true;
      await client?.end().catch(() => undefined);
    },
  };
}
