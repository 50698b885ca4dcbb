import assert from "node:assert/strict";
import { describe, test } from "node:test";

import { spawnRun } from "../../common/processes";

describe("spawnRun", () => {
  test("streams lines and reports the exit code", async () => {
    const lines: string[] = [];
    const r = await spawnRun(process.execPath, ["-e", "console.log('a\\nb'); console.error('c'); process.exit(3)"], {
      onLine: (l) => lines.push(l),
    });
    assert.equal(r.code, 3);
    assert.deepEqual(lines.sort(), ["a", "b", "c"]);
  });

  test("a timeout kills the process", async () => {
    const r = await spawnRun(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { timeoutMs: 200 });
    assert.equal(r.code, null);
    assert.match(r.error ?? "", /timed out/);
  });

  test("an abort signal kills the process", async () => {
    const abort = new AbortController();
    const running = spawnRun(process.execPath, ["-e", "setTimeout(() => {}, 60000)"], { signal: abort.signal });
    abort.abort();
    const r = await running;
    assert.equal(r.error, "cancelled");
  });
});
