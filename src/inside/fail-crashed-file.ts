// A setup file the pool puts first for a worker that runs one file whose earlier worker
// crashed (Vitest 3; Vitest 4/5 with isolate: true): the file fails at once, with how
// that worker ended, through the runner's own reporting -- one failed file, as a file
// that throws at import would be, and no test of it runs twice.
import { crashError, takeCrashedFile } from './crashed-file.js'

const crash = takeCrashedFile()
if (crash) throw crashError(crash)
