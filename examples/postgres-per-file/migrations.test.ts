import { afterAll, beforeAll, expect, it } from 'vitest'
import { startDatabase, type Database } from './database.js'

let db: Database
beforeAll(async () => {
  db = await startDatabase()
})
afterAll(() => db?.stop())

const migrations = [
  'CREATE TABLE users (id serial PRIMARY KEY, email text)',
  'ALTER TABLE users ADD COLUMN created_at timestamptz NOT NULL DEFAULT now()',
  'CREATE INDEX users_email ON users (email)',
]

it('applies the migrations in order to a fresh database, as a superuser', async () => {
  for (const sql of migrations) await db.client.query(sql)
  const { rows } = await db.client.query("SELECT column_name FROM information_schema.columns WHERE table_name = 'users' ORDER BY ordinal_position")
  expect(rows.map((r) => r.column_name)).toEqual(['id', 'email', 'created_at'])
  expect((await db.client.query('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')).rows).toEqual([{ rolsuper: true }])
})
