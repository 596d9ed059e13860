// ESM entry point: the CommonJS module's exports.
import sluice from './index.js'

export const {
  Engine,
  GrantKey,
  OidcVerifier,
  Recorder,
  Session,
  StreamRedactor,
  verifyRecording,
  replayRecording,
  exportAsciicast,
  SluiceError,
  RuleError,
  PolicyError,
  RequestError,
  LimitError,
  GrantError,
  OidcError,
  RecordingError,
  SessionError,
} = sluice
export default sluice
