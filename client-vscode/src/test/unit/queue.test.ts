import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { RestartQueue } from "../../common/queue";

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("restart queue", () => {
  test("one request runs the task once", async () => {
    let runs = 0;
    const queue = new RestartQueue(() => {
      runs++;
      return Promise.resolve();
    });
    await queue.request();
    assert.equal(runs, 1);
    assert.equal(queue.busy, false);
  });

  test("requests during a run collapse into exactly one more run, never overlapping", async () => {
    const gates = [deferred(), deferred()];
    let runs = 0;
    let active = 0;
    let maxActive = 0;
    const queue = new RestartQueue(async () => {
      const gate = gates[runs++];
      active++;
      maxActive = Math.max(maxActive, active);
      await gate.promise;
      active--;
    });
    const first = queue.request();
    const second = queue.request();
    const third = queue.request();
    assert.equal(second, third);
    gates[0].resolve();
    await first;
    gates[1].resolve();
    await second;
    assert.equal(runs, 2);
    assert.equal(maxActive, 1);
  });

  test("a failed run does not block the next one", async () => {
    let runs = 0;
    const queue = new RestartQueue(() => (++runs === 1 ? Promise.reject(new Error("boom")) : Promise.resolve()));
    const first = queue.request();
    const second = queue.request();
    await assert.rejects(first, /boom/);
    await second;
    assert.equal(runs, 2);
  });
});
