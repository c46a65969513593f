// The scheduler's caches use the one list+watch loop and Store in lib/listwatch.ts (shared
// with the agent's claims); this module keeps the names the scheduler imports.
export { listWatch, newerRv, Store, type Listed, type ListWatchOptions, type PageRequest, type Parsed } from '../lib/listwatch.js';
