// ESM entry point: the CommonJS module's exports.
import sluice from './index.js'

export const { Engine, Session, StreamRedactor, SluiceError, RuleError, PolicyError, RequestError, LimitError } = sluice
export default sluice
