import mcp from './mcp.js'

export const { guardTransport } = mcp
export default mcp
