import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { completedMove, moveAnnotation, moveDurations, movedMessage, pendingMove } from './moves.js';
import { MOVE_ANNOTATION } from './types.js';

const move = { from: 'a', to: 'b', reason: 'probe', detectedAt: '2026-01-01T00:00:00.000Z', claimedAt: '2026-01-01T00:00:00.040Z' };
const meta = (text?: string) => ({ metadata: text === undefined ? {} : { annotations: { [MOVE_ANNOTATION]: text } } });

test('the annotation round-trips; anything malformed is no move', () => {
  assert.equal(pendingMove(meta(moveAnnotation(move))), move);
  assert.is(pendingMove(meta()), null);
  assert.is(pendingMove(meta('{')), null);
  assert.is(pendingMove(meta(JSON.stringify({ ...move, detectedAt: 'yesterday' }))), null);
});

test('the new node reports the move once, with its own upAt; another node does not', () => {
  const claim = meta(moveAnnotation(move));
  const done = completedMove(claim, 'b', '2026-01-01T00:00:00.100Z');
  assert.equal(done, { ...move, upAt: '2026-01-01T00:00:00.100Z' });
  assert.is(
    completedMove({ ...claim, status: { lastMove: done ?? undefined } }, 'b', '2026-01-01T00:09:00.000Z'),
    done,
    'already reported: same object, no new write',
  );
  assert.is(completedMove(claim, 'a', '2026-01-01T00:00:00.100Z'), null);
});

test('durations and the IPMoved message; clock skew never shows a negative step', () => {
  const up = { ...move, upAt: '2026-01-01T00:00:00.100Z' };
  assert.equal(moveDurations(up), { toClaim: 0.04, toUp: 0.06, total: 0.1 });
  assert.is(
    movedMessage('192.0.2.1', up),
    '192.0.2.1 moved from node a to b: probe; took 0.100s (failure detected -> claim written 0.040s -> address up on b 0.060s)',
  );
  assert.is(moveDurations({ ...move, upAt: '2025-12-31T23:59:59.000Z' }).toUp, 0);
  assert.match(movedMessage('192.0.2.1', move), /not reported up on b yet$/);
});

test.run();
