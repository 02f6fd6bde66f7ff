const { startService, startUpstream } = require('./service.cjs')

/** One file's check: its own service on port 80, its own upstream, its own prices. */
exports.checkPrice = (item, price) => {
  test(`${item} costs ${price}`, async () => {
    const upstream = await startUpstream({ [item]: price })
    const service = await startService(80)
    try {
      const answer = await (await fetch(`http://127.0.0.1/price/${item}`)).json()
      expect(answer).toEqual({ item, price, servedBy: 0 })
    } finally {
      await new Promise((resolve) => service.close(resolve))
      await new Promise((resolve) => upstream.close(resolve))
    }
  })
}
