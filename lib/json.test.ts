import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { asRecord, asString, asStrings, isRecord, isStringArray } from './json.js';

test('isRecord accepts objects only, not null or arrays', () => {
  assert.ok(isRecord({}));
  assert.not.ok(isRecord(null));
  assert.not.ok(isRecord([]));
  assert.not.ok(isRecord('x'));
});

test('the as* readers fall back instead of throwing', () => {
  assert.equal(asRecord(asRecord(undefined).metadata), {});
  assert.is(asString(3), undefined);
  assert.equal(asStrings(['a', 1, 'b']), ['a', 'b']);
  assert.equal(asStrings('a'), []);
  assert.ok(isStringArray(['a']));
  assert.not.ok(isStringArray(['a', 1]));
});

test.run();
