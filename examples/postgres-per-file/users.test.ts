import { afterAll, beforeAll, expect, it } from 'vitest'
import { startDatabase, type Database } from './database.js'

let db: Database
beforeAll(async () => {
  db = await startDatabase()
})
afterAll(() => db?.stop())

it('starts from an empty database, whatever the other files do to theirs', async () => {
  const { rows } = await db.client.query("SELECT count(*)::int AS n FROM pg_tables WHERE schemaname = 'public'")
  expect(rows).toEqual([{ n: 0 }])
})

it('enforces a unique email', async () => {
  await db.client.query('CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL)')
  await db.client.query("INSERT INTO users (email) VALUES ('ada@example.test')")
  await expect(db.client.query("INSERT INTO users (email) VALUES ('ada@example.test')")).rejects.toMatchObject({ code: '23505' })
})
