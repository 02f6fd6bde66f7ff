// `runner: 'vitest-pool-rootless/jest'` resolves here: Jest loads runners with require(),
// so this entry is CommonJS. The runner itself is an ES module, loaded with
// require(esm) (Node >= 20.19). Nothing here or there loads Vitest.
import runner = require('./runner.js')

const RootlessJestRunner = runner.RootlessJestRunner
export = RootlessJestRunner
