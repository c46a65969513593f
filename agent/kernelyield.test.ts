// The kernel yield's nft scripts: what the kernel is told decides whether a node falls silent
// when another agent of ours takes an address over (the wire test is test/integration/kernel-yield.test.ts).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { peerList, yieldPeers, yieldTables } from './kernelyield.js';

test('the rules: a peer announcing an address starts (or restarts) its hold, and replies for held addresses are dropped', () => {
  const script = yieldTables('t', 1000);
  assert.match(script, /^table arp t \{\}\ndelete table arp t\n/, 'idempotent: an older copy is replaced');
  assert.match(script, /arp saddr ether @peers update @yielded \{ arp saddr ip \}/);
  assert.match(script, /arp operation reply arp saddr ip @yielded drop/);
  assert.match(script, /icmpv6 type nd-neighbor-advert ether saddr @peers update @yielded \{ @th,64,128 \}/);
  assert.match(script, /icmpv6 type nd-neighbor-advert @th,64,128 @yielded drop/);
  assert.match(script, /set yielded \{ type ipv4_addr; flags dynamic,timeout; timeout 1000ms; \}/);
});

test('peers are replaced in one transaction for both families; none empties the sets', () => {
  assert.is(
    yieldPeers(['02:00:00:00:00:11', '02:00:00:00:00:12'], 't'),
    [
      'flush set arp t peers',
      'flush set ip6 t peers',
      'add element arp t peers { 02:00:00:00:00:11, 02:00:00:00:00:12 }',
      'add element ip6 t peers { 02:00:00:00:00:11, 02:00:00:00:00:12 }',
      '',
    ].join('\n'),
  );
  assert.is(yieldPeers([], 't'), 'flush set arp t peers\nflush set ip6 t peers\n');
});

test('peer MACs are normalised, deduplicated and sorted; anything that is not a MAC is left out', () => {
  assert.equal(peerList(['02:00:00:00:00:12', '02:00:00:00:00:11', '02:00:00:00:00:12', 'AA:BB:CC:DD:EE:FF', 'nonsense', '']), [
    '02:00:00:00:00:11',
    '02:00:00:00:00:12',
    'aa:bb:cc:dd:ee:ff',
  ]);
});

test.run();
