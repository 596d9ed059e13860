// ESM entry point: the CommonJS module's exports.
import sluice from './index.js'

export const { Engine, GrantKey, Session, StreamRedactor, SluiceError, RuleError, PolicyError, RequestError, LimitError, GrantError } = sluice
export default sluice
