// The scheduler's API clients: one keep-alive pool with a deadline per request and an RST reset
// of the pool after a deadline passes, from lib/keepalive.ts (shared with the agent).
export { keepAliveClient, withSignal, type JsonCall } from '../lib/keepalive.js';
