import ai from './ai.js'

export const { sluiceMiddleware } = ai
export default ai
