// The "outside" the network: 'egress' tests reach: a small HTTP server that
// scripts/outside-network.sh runs in a network namespace of its own, at 198.18.0.2:8080.
//   GET /hello     -> "hello from outside\n"
//   GET /bytes/N   -> N zero bytes (the bench's download)
import { createServer } from 'node:http'

const [host = '198.18.0.2', port = '8080'] = process.argv.slice(2)
const chunk = Buffer.alloc(1 << 20)

createServer((req, res) => {
  const bytes = /^\/bytes\/(\d+)$/.exec(req.url ?? '')
  if (req.url === '/hello') {
    res.end('hello from outside\n')
  } else if (bytes) {
    let left = Number(bytes[1])
    res.writeHead(200, { 'content-length': String(left), 'content-type': 'application/octet-stream' })
    const pump = () => {
      while (left > 0) {
        const n = Math.min(left, chunk.length)
        left -= n
        if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
  } else {
    res.statusCode = 404
    res.end('not found\n')
  }
}).listen(Number(port), host)
