import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LineSplitter, parseEventLine } from './watchstream.js';

test('lines cut between chunks are joined; empty lines are left out', () => {
  const s = new LineSplitter();
  assert.equal(s.push('{"type":"ADDED"'), []);
  assert.equal(s.push(',"object":{}}\n\n{"type":"MOD'), ['{"type":"ADDED","object":{}}']);
  assert.equal(s.push('IFIED","object":{"a":1}}\n{"type":"DELETED","object":{}}\n'), [
    '{"type":"MODIFIED","object":{"a":1}}',
    '{"type":"DELETED","object":{}}',
  ]);
  assert.equal(s.push(''), []);
});

test('an event line gives its type and object; anything else is skipped', () => {
  assert.equal(parseEventLine('{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"9"}}}'), {
    type: 'BOOKMARK',
    object: { metadata: { resourceVersion: '9' } },
  });
  assert.is(parseEventLine('{"type":"ADD'), null);
  assert.is(parseEventLine('{"object":{}}'), null);
  assert.is(parseEventLine('[]'), null);
});

test.run();
