const http = require('node:http')

/**
 * The service under test: listens on port 80 as it does in production and answers
 * `/price/:item` with the price it asks its upstream, http://api.example.test:8080, for.
 */
exports.startService = (port = 80) =>
  new Promise((resolve) => {
    const server = http.createServer(async (req, res) => {
      const item = req.url.split('/').pop()
      const upstream = await fetch(`http://api.example.test:8080/prices/${item}`)
      res.end(JSON.stringify({ item, price: Number(await upstream.text()), servedBy: process.getuid() }))
    })
    server.listen(port, () => resolve(server))
  })

/** A stand-in for the upstream on api.example.test:8080, in the same sandbox. */
exports.startUpstream = (prices) =>
  new Promise((resolve) => {
    const server = http.createServer((req, res) => res.end(String(prices[req.url.split('/').pop()] ?? 0)))
    server.listen(8080, '127.0.0.1', () => resolve(server))
  })
