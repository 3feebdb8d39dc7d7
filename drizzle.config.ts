import { defineConfig } from 'drizzle-kit';

/** `npm run db:generate` makes a migration for each engine; see drizzle.postgres.config.ts. */
export default defineConfig({
  dialect: 'sqlite',
  schema: './src/db/sqlite/schema.ts',
  out: './migrations/sqlite',
});
