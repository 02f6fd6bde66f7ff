import { afterAll, beforeAll, expect, it } from 'vitest'
import { startDatabase, type Database } from './database.js'

let db: Database
beforeAll(async () => {
  db = await startDatabase()
})
afterAll(() => db?.stop())

it('finds documents by full-text search', async () => {
  await db.client.query('CREATE TABLE docs (id serial, body text)')
  await db.client.query("INSERT INTO docs (body) VALUES ('rootless test sandboxes'), ('a database per test file'), ('no docker needed')")
  const { rows } = await db.client.query("SELECT body FROM docs WHERE to_tsvector('english', body) @@ to_tsquery('english', 'database & file')")
  expect(rows).toEqual([{ body: 'a database per test file' }])
})
