// The dead-man switch's nft scripts, byte for byte: what the kernel is told decides whether a
// frozen node falls silent.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ACK_LINE, acksIn, asOneLine, hasTables, deadmanHold, deadmanRefresh, deadmanTables, ipv6Key } from './deadman.js';

test('IPv6 addresses are keyed as the 128-bit integer at the NA target offset', () => {
  assert.is(ipv6Key('2001:db8::50'), '0x20010db8000000000000000000000050');
  assert.is(ipv6Key('2001:db8:1::5'), '0x20010db8000100000000000000000005');
});

test('a refresh replaces both sets in one transaction, each address live for the ttl', () => {
  assert.is(
    deadmanRefresh(['192.0.2.50', '2001:db8::50', '192.0.2.51'], 400, 't'),
    [
      'flush set arp t managed',
      'flush set arp t live',
      'flush set ip6 t managed',
      'flush set ip6 t live',
      'add element arp t managed { 192.0.2.50, 192.0.2.51 }',
      'add element arp t live { 192.0.2.50 timeout 400ms, 192.0.2.51 timeout 400ms }',
      'add element ip6 t managed { 0x20010db8000000000000000000000050 }',
      'add element ip6 t live { 0x20010db8000000000000000000000050 timeout 400ms }',
      '',
    ].join('\n'),
  );
});

test('nothing held: the sets are emptied, so nothing is dropped and nothing stays live', () => {
  assert.is(deadmanRefresh([], 400, 't'), 'flush set arp t managed\nflush set arp t live\nflush set ip6 t managed\nflush set ip6 t live\n');
});

test('the rules drop only replies / advertisements for managed addresses that are not live', () => {
  const script = deadmanTables('t');
  assert.match(script, /arp operation reply arp saddr ip @managed arp saddr ip != @live drop/);
  assert.match(script, /icmpv6 type nd-neighbor-advert @th,64,128 @managed @th,64,128 != @live drop/);
  assert.match(script, /^table arp t \{\}\ndelete table arp t\n/, 'idempotent: an older copy is replaced');
});

test('a refresh goes to nft -i as one line, so it is one transaction', () => {
  assert.is(
    asOneLine(deadmanRefresh(['192.0.2.50'], 400, 't')),
    'flush set arp t managed; flush set arp t live; flush set ip6 t managed; flush set ip6 t live; add element arp t managed { 192.0.2.50 }; add element arp t live { 192.0.2.50 timeout 400ms }\n',
  );
});

test('tables left by an earlier run are found in nft list tables (and kept), a half set is not', () => {
  assert.ok(hasTables('table inet filter\ntable arp t\ntable ip6 t\n', 't'));
  assert.not.ok(hasTables('table arp t\n', 't'));
  assert.not.ok(hasTables('table arp tt\ntable ip6 t\n', 't'));
});

test('a hold adds addresses to the managed sets only, so they stay unanswered until a refresh marks them live', () => {
  assert.is(
    deadmanHold(['192.0.2.52', '2001:db8::52'], 't'),
    'add element arp t managed { 192.0.2.52 }\nadd element ip6 t managed { 0x20010db8000000000000000000000052 }\n',
  );
  assert.is(deadmanHold([], 't'), '', 'nothing to hold: no transaction');
});

test('a hold is confirmed by a listing whose last line is the table closing: one per listing, partial lines do not count', () => {
  assert.match(ACK_LINE, /^list chain arp ipcontroller_deadman out\n$/);
  const listing = 'table arp ipcontroller_deadman {\n\tchain out {\n\t\ttype filter hook output priority filter; policy accept;\n\t}\n}\n';
  assert.is(acksIn(listing), 1);
  assert.is(acksIn(listing + listing), 2);
  assert.is(acksIn('\t}\n'), 0, 'an inner closing brace is not the end of a listing');
});

test.run();
