import { describe, expect, it } from 'vitest'
import { scrubEnv } from '../../src/plan/env.js'

describe('scrubEnv', () => {
  const env = { PATH: '/bin', NPM_TOKEN: 'secret', AWS_KEY: 'k', AWS_SECRET: 's', AWSOME: 'keep' }
  it('drops exact names and prefixes, keeps the rest', () => {
    expect(scrubEnv(env, ['NPM_TOKEN', 'AWS_*'])).toEqual({ PATH: '/bin', AWSOME: 'keep' })
  })
  it('returns the same object when nothing is dropped', () => {
    expect(scrubEnv(env, [])).toBe(env)
  })
})
