import { defineConfig } from 'drizzle-kit';

/** The PostgreSQL engine's migrations: `npm run db:generate` runs drizzle-kit for both engines. */
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/postgres/schema.ts',
  out: './migrations/postgres',
});
