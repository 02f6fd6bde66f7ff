import { holdsPort3000 } from './hold-port.js'

holdsPort3000('port-04')
