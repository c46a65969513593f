import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { Step } from './plan.js';
import { StepRun, type RunResult, type RunWorker } from './steprun.js';

const step = (key: string): Step => ({ key, write: null, notices: [] });

/** A worker that records the order steps were made in; fails the keys listed. */
function worker(concurrency: number, fail: string[] = [], lost: () => boolean = () => false): RunWorker & { order: string[] } {
  const order: string[] = [];
  return {
    order,
    concurrency,
    lost,
    async one(s: Step, result: RunResult): Promise<boolean> {
      order.push(s.key);
      await Promise.resolve();
      if (fail.includes(s.key)) {
        result.errors++;
        return false;
      }
      result.done.add(s.key);
      return true;
    },
  };
}

test('what follows a landed step is made before the steps not started yet', async () => {
  const w = worker(1);
  const run = new StepRun(
    [step('claim-a'), step('claim-b'), step('claim-c')],
    { follow: (s) => [step(`ingress-${s.key}`)].filter((x) => x.key.startsWith('ingress-claim')) },
    w,
  );
  const r = await run.result;
  assert.equal(w.order, ['claim-a', 'ingress-claim-a', 'claim-b', 'ingress-claim-b', 'claim-c', 'ingress-claim-c']);
  assert.is(r.kind, 'ok');
});

test('a failed step has no follow-ups; the run says retry', async () => {
  const w = worker(2, ['claim-b']);
  const r = await new StepRun(
    [step('claim-a'), step('claim-b')],
    { follow: (s) => (s.key.startsWith('claim') ? [step(`ingress-${s.key}`)] : []) },
    w,
  ).result;
  assert.equal([...r.done].sort(), ['claim-a', 'ingress-claim-a']);
  assert.is(r.kind, 'retry');
});

test('a held run waits for steps another lane adds, and ends once released', async () => {
  const w = worker(4);
  const run = new StepRun([step('claim-a')], {}, w);
  const release = run.hold();
  let ended = false;
  void run.result.then(() => (ended = true));
  await new Promise((r) => setImmediate(r));
  assert.not.ok(ended, 'held: not ended although its steps are done');
  run.add([step('ingress-a')]);
  release();
  const r = await run.result;
  assert.equal(w.order, ['claim-a', 'ingress-a']);
  assert.ok(r.done.has('ingress-a'));
});

test('once leadership is lost nothing more starts, and the run ends although held', async () => {
  let lost = false;
  const w = worker(1, [], () => lost);
  const run = new StepRun([step('a'), step('b'), step('c')], { settled: () => (lost = true) }, w);
  run.hold();
  const r = await run.result;
  assert.equal(w.order, ['a']);
  assert.is(r.kind, 'lostLeadership');
});

test.run();
