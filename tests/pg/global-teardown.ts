/** globalTeardown of jest's `postgres` project: stops the server global-setup.ts started. */
export default async function globalTeardown(): Promise<void> {
  await globalThis.__testPostgres?.stop();
  globalThis.__testPostgres = undefined;
}
