import h from './http.js'

export const { createProxy } = h
export default h
