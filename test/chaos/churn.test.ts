import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { churnService, externalIp, nextStep } from './churn.js';
import { lossRules } from './faults.js';

test('churn keeps the count between low and high and picks at random between them', () => {
  assert.is(nextStep(3, 8, 25, 0.9), 'create');
  assert.is(nextStep(25, 8, 25, 0.1), 'delete');
  assert.is(nextStep(12, 8, 25, 0.1), 'create');
  assert.is(nextStep(12, 8, 25, 0.9), 'delete');
});

test('churn Services: each shape asks for what its name says, externalIPs stay outside the pools', () => {
  assert.equal(churnService('a', 'lb-dual', 0).spec?.ipFamilyPolicy, 'RequireDualStack');
  assert.equal(churnService('b', 'lb-v6', 0).spec?.ipFamilies, ['IPv6']);
  assert.equal(churnService('c', 'ext-v4', 25).spec?.externalIPs, ['192.0.2.234']);
  assert.is(churnService('d', 'ext-v6', 0).spec?.type, undefined);
  assert.is(externalIp('ext-v6', 300), '2001:db8::2:2c');
});

test('loss rules drop N% both ways on the node link', () => {
  const rules = lossRules(20);
  assert.match(rules, /hook ingress device "eth0" priority 0; numgen random mod 100 < 20 drop;/);
  assert.match(rules, /hook egress device "eth0" priority 0; numgen random mod 100 < 20 drop;/);
});

test.run();
