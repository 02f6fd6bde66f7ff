import { afterAll, beforeAll, expect, it } from 'vitest'
import { startDatabase, type Database } from './database.js'

let db: Database
beforeAll(async () => {
  db = await startDatabase()
})
afterAll(() => db?.stop())

it('has its own users table: same name as in users.test.ts, other columns', async () => {
  await db.client.query('CREATE TABLE users (id int PRIMARY KEY, name text)')
  await db.client.query('CREATE TABLE orders (id serial, user_id int REFERENCES users, total numeric)')
  await db.client.query("INSERT INTO users VALUES (1, 'Grace')")
  await db.client.query('INSERT INTO orders (user_id, total) VALUES (1, 10.5), (1, 4.5)')
  const { rows } = await db.client.query('SELECT u.name, sum(o.total)::text AS total FROM users u JOIN orders o ON o.user_id = u.id GROUP BY u.name')
  expect(rows).toEqual([{ name: 'Grace', total: '15.0' }])
})

it('rolls back a failed transaction', async () => {
  await db.client.query('BEGIN')
  await db.client.query('INSERT INTO orders (user_id, total) VALUES (1, 1)')
  await expect(db.client.query('INSERT INTO orders (user_id, total) VALUES (99, 1)')).rejects.toMatchObject({ code: '23503' })
  await db.client.query('ROLLBACK')
  expect((await db.client.query('SELECT count(*)::int AS n FROM orders')).rows).toEqual([{ n: 2 }])
})
