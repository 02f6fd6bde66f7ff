import { definePoolSuite } from '../support/pool-suite.js'

definePoolSuite(4)
