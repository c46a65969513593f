// The scheduler's API clients: one keep-alive pool with a deadline per request and an RST reset
// of the pool after a deadline passes, from lib/keepalive.ts (shared with the agent).
export { keepAliveApis, keepAliveClient, withSignal, type ApiFactory, type JsonCall } from '../lib/keepalive.js';
