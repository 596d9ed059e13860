// ESM entry point: the CommonJS module's exports (Node finds their names in index.js's
// `module.exports = { … }`).
export * from './index.js'
export { default } from './index.js'
