// Both elements in one module (one copy of the library): `<tidings-bell>` and `<tidings-center>`.
export { TidingsBell } from './bell.js'
export { TidingsCenter } from './center.js'
export { connect } from '../src/index.js'
