// Every test file runs as root in a sandbox of its own: each can listen on port 80, the
// port the service uses in production, and api.example.test resolves to its own loopback.
module.exports = {
  runner: ['vitest-pool-rootless/jest', { hosts: { 'api.example.test': '127.0.0.1' } }],
  // all four files at once, each with a network of its own
  maxWorkers: 4,
  testMatch: ['**/*.test.cjs'],
}
