import { defineConfig } from 'drizzle-kit';

// The PostgreSQL migrations (SEGQL_DATABASE_URL=postgres://…); drizzle.config.ts is SQLite's.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/pg/schema.ts',
  out: './drizzle/pg',
});
