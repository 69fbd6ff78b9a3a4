import { mock, test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import type { OutRecord, RecordPosition } from "../../common/kafka/kafka.ts";
import { kafkaRejected, kafkaUnavailable } from "../../common/kafka/errors.ts";
import {
  createSendBatcher,
  recordBytes,
  type EnqueueResult,
  type SendBatcherOptions,
  type SendFn,
} from "../../gateway/send-batcher.ts";

const seed = Number(process.env["RT_TEST_SEED"] ?? Date.now() % 2 ** 31);
console.log(`send-batcher.test: fast-check seed ${seed} (replay with RT_TEST_SEED=${seed})`);

// Timers are node's mock timers (setTimeout only); setImmediate stays real, to run promise
// continuations between mock ticks.
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

async function advance(ms: number): Promise<void> {
  await settle();
  for (let i = 0; i < ms; i++) {
    mock.timers.tick(1);
    await settle();
  }
}

function withMockTimers<T>(body: () => Promise<T>): Promise<T> {
  mock.timers.enable({ apis: ["setTimeout"] });
  return body().finally(() => mock.timers.reset());
}

const rec = (id: string, valueBytes = 1): OutRecord => ({
  key: id,
  value: Buffer.alloc(valueBytes),
  headers: { id },
});
const idOf = (r: OutRecord): string => r.key;

interface Call {
  readonly topic: string;
  readonly ids: string[];
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

/** A send that waits for the test to resolve or reject each call; offsets count per topic. */
function manualSend(): { send: SendFn; calls: Call[] } {
  const calls: Call[] = [];
  const next = new Map<string, number>();
  const send: SendFn = (topic, records) =>
    new Promise<RecordPosition[]>((resolve, reject) => {
      calls.push({
        topic,
        ids: records.map(idOf),
        resolve: () =>
          resolve(
            records.map(() => {
              const offset = next.get(topic) ?? 0;
              next.set(topic, offset + 1);
              return { topic, partition: 0, offset: String(offset) };
            }),
          ),
        reject,
      });
    });
  return { send, calls };
}

/** Records every result as it arrives, so a test can see what has resolved so far. */
function track(promise: Promise<EnqueueResult>): { result: EnqueueResult | null } {
  const box: { result: EnqueueResult | null } = { result: null };
  void promise.then((r) => (box.result = r));
  return box;
}

const opts = (send: SendFn, more: Partial<SendBatcherOptions> = {}): SendBatcherOptions => ({
  send,
  lingerMs: 2,
  timeoutMs: 1000,
  ...more,
});

test("acks only after the send call has resolved", () =>
  withMockTimers(async () => {
    const { send, calls } = manualSend();
    const b = createSendBatcher(opts(send));
    const a = track(b.enqueue("t", rec("a")));
    await advance(5);
    assert.equal(calls.length, 1);
    assert.equal(a.result, null, "no ack while the send is in flight");
    assert.deepEqual(b.stats(), { queuedRecords: 0, queuedBytes: 0, inFlightBatches: 1, inFlightRecords: 1 });
    calls[0]!.resolve();
    await settle();
    assert.deepEqual(a.result, { ok: true, position: { topic: "t", partition: 0, offset: "0" } });
    assert.deepEqual(b.stats(), { queuedRecords: 0, queuedBytes: 0, inFlightBatches: 0, inFlightRecords: 0 });
  }));

test("enqueues within linger go in one send call; nothing is sent before linger", () =>
  withMockTimers(async () => {
    const { send, calls } = manualSend();
    const b = createSendBatcher(opts(send, { lingerMs: 3 }));
    void b.enqueue("t", rec("a"));
    void b.enqueue("t", rec("b"));
    await advance(1);
    void b.enqueue("t", rec("c"));
    await advance(1);
    assert.equal(calls.length, 0);
    await advance(1);
    assert.deepEqual(
      calls.map((c) => c.ids),
      [["a", "b", "c"]],
    );
  }));

test("lingerMs 0 sends at once; later records batch up behind the in-flight call", () =>
  withMockTimers(async () => {
    const { send, calls } = manualSend();
    const b = createSendBatcher(opts(send, { lingerMs: 0 }));
    void b.enqueue("t", rec("a"));
    void b.enqueue("t", rec("b"));
    void b.enqueue("t", rec("c"));
    await settle();
    assert.deepEqual(
      calls.map((c) => c.ids),
      [["a"]],
    );
    calls[0]!.resolve();
    await settle();
    assert.deepEqual(
      calls.map((c) => c.ids),
      [["a"], ["b", "c"]],
    );
  }));

test("batches split at maxBatchRecords and maxBatchBytes, one in flight at a time, in order", () =>
  withMockTimers(async () => {
    for (const [limits, expected] of [
      [{ maxBatchRecords: 2 }, [["a", "b"], ["c", "d"], ["e"]]],
      // Each record weighs 10 (value) + 1 (key) + 2 + 1 (header "id" = key): 14 bytes.
      [{ maxBatchBytes: 30 }, [["a", "b"], ["c", "d"], ["e"]]],
      [{ maxBatchBytes: 14 }, [["a"], ["b"], ["c"], ["d"], ["e"]]],
    ] as const) {
      const { send, calls } = manualSend();
      const b = createSendBatcher(opts(send, limits));
      const results = ["a", "b", "c", "d", "e"].map((id) => b.enqueue("t", rec(id, 10)));
      for (let i = 0; i < expected.length; i++) {
        await advance(3);
        assert.equal(calls.length, i + 1, "the next batch waits for the previous one");
        calls[i]!.resolve();
      }
      assert.deepEqual(
        calls.map((c) => c.ids),
        expected,
      );
      const offsets = (await Promise.all(results)).map((r) => (r.ok ? r.position.offset : r.code));
      assert.deepEqual(offsets, ["0", "1", "2", "3", "4"]);
    }
  }));

test("a rejected send fails every record of the call, with the code its error calls for", () =>
  withMockTimers(async () => {
    const cases = [
      [kafkaUnavailable("broker down"), { code: "unavailable", retriable: true, message: "broker down" }],
      [kafkaRejected("too large"), { code: "rejected", retriable: false, message: "too large" }],
      [new Error("bug"), { code: "unavailable", retriable: true, message: "send failed: bug" }],
    ] as const;
    for (const [error, expected] of cases) {
      const { send, calls } = manualSend();
      const b = createSendBatcher(opts(send));
      const results = [b.enqueue("t", rec("a")), b.enqueue("t", rec("b"))];
      await advance(3);
      calls[0]!.reject(error);
      for (const r of await Promise.all(results)) assert.deepEqual(r, { ok: false, ...expected });
    }
  }));

test("a send that throws synchronously fails its records and the batcher carries on", () =>
  withMockTimers(async () => {
    let first = true;
    const send: SendFn = async (topic, records) => {
      if (first) {
        first = false;
        throw kafkaUnavailable("no connection");
      }
      return records.map((_, i) => ({ topic, partition: 0, offset: String(i) }));
    };
    const b = createSendBatcher(opts(send, { lingerMs: 0 }));
    const r1 = await b.enqueue("t", rec("a"));
    assert.equal(r1.ok, false);
    assert.deepEqual(await b.enqueue("t", rec("b")), {
      ok: true,
      position: { topic: "t", partition: 0, offset: "0" },
    });
  }));

test("queue_full at the record bound and the byte bound leaves queued records alone", () =>
  withMockTimers(async () => {
    const size = recordBytes(rec("a"));
    for (const limits of [{ maxQueuedRecords: 2 }, { maxQueuedBytes: 2 * size + 1 }]) {
      const { send, calls } = manualSend();
      const b = createSendBatcher(opts(send, { ...limits, maxBatchBytes: 2 * size + 1 }));
      const queued = [track(b.enqueue("t", rec("a"))), track(b.enqueue("u", rec("b")))];
      assert.deepEqual(await b.enqueue("t", rec("c")), {
        ok: false,
        code: "queue_full",
        retriable: true,
        message: "the gateway's produce queue is full; retry later",
      });
      assert.deepEqual(b.stats(), {
        queuedRecords: 2,
        queuedBytes: 2 * size,
        inFlightBatches: 0,
        inFlightRecords: 0,
      });
      await advance(3);
      calls[0]!.resolve();
      await settle();
      calls[1]!.resolve();
      await settle();
      assert.deepEqual(
        calls.map((c) => c.ids),
        [["a"], ["b"]],
      );
      assert.deepEqual(
        queued.map((q) => q.result?.ok),
        [true, true],
      );
      const later = track(b.enqueue("t", rec("d")));
      await settle();
      assert.equal(later.result, null, "accepted again once the queue drained");
      assert.equal(b.stats().queuedRecords, 1);
    }
  }));

test("a record larger than a batch is rejected at once", () =>
  withMockTimers(async () => {
    const { send, calls } = manualSend();
    const b = createSendBatcher(opts(send, { maxBatchBytes: 100 }));
    const r = await b.enqueue("t", rec("big", 100));
    assert.equal(r.ok, false);
    assert.equal(!r.ok && r.code, "rejected");
    assert.equal(!r.ok && r.retriable, false);
    await advance(5);
    assert.equal(calls.length, 0);
  }));

test("timeout in flight, then a late success: one result per record, order kept behind it", () =>
  withMockTimers(async () => {
    const { send, calls } = manualSend();
    const b = createSendBatcher(opts(send, { timeoutMs: 50 }));
    const a = track(b.enqueue("t", rec("a")));
    await advance(10);
    const late = track(b.enqueue("t", rec("b")));
    await advance(40);
    assert.equal(a.result?.ok, false);
    assert.equal(!a.result?.ok && a.result?.code, "timeout");
    assert.match(!a.result?.ok ? (a.result?.message ?? "") : "", /may still be written/);
    assert.equal(late.result, null);
    // The timed-out call keeps the topic's slot: "b" is not sent past a write that may still land.
    assert.equal(calls.length, 1);
    assert.equal(b.stats().inFlightBatches, 1);
    calls[0]!.resolve();
    await settle();
    assert.equal(a.result?.ok, false, "the late success does not resolve the record again");
    assert.equal(!a.result?.ok && a.result?.code, "timeout");
    await advance(1);
    assert.deepEqual(
      calls.map((c) => c.ids),
      [["a"], ["b"]],
    );
    calls[1]!.resolve();
    await settle();
    assert.deepEqual(late.result, { ok: true, position: { topic: "t", partition: 0, offset: "1" } });
  }));

test("a late failure after a timeout changes nothing, and a record that timed out queued is never sent", () =>
  withMockTimers(async () => {
    const { send, calls } = manualSend();
    const b = createSendBatcher(opts(send, { timeoutMs: 50 }));
    const a = track(b.enqueue("t", rec("a")));
    await advance(3);
    const queued = track(b.enqueue("t", rec("b")));
    await advance(50);
    assert.equal(!a.result?.ok && a.result?.code, "timeout");
    assert.equal(!queued.result?.ok && queued.result?.code, "timeout");
    assert.match(!queued.result?.ok ? (queued.result?.message ?? "") : "", /not written/);
    assert.equal(b.stats().queuedRecords, 0);
    calls[0]!.reject(kafkaUnavailable("gone"));
    await advance(5);
    assert.equal(!a.result?.ok && a.result?.code, "timeout");
    assert.deepEqual(
      calls.map((c) => c.ids),
      [["a"]],
      "b timed out in the queue and was dropped",
    );
    assert.deepEqual(b.stats(), { queuedRecords: 0, queuedBytes: 0, inFlightBatches: 0, inFlightRecords: 0 });
  }));

test("flush sends without waiting for linger and resolves once every record has its result", () =>
  withMockTimers(async () => {
    const { send, calls } = manualSend();
    const b = createSendBatcher(opts(send, { lingerMs: 1000 }));
    const results = [b.enqueue("t", rec("a")), b.enqueue("u", rec("b"))];
    let flushed = false;
    void b.flush().then(() => (flushed = true));
    await settle();
    assert.equal(calls.length, 1);
    calls[0]!.resolve();
    await settle();
    assert.equal(flushed, false);
    calls[1]!.resolve();
    await settle();
    assert.equal(flushed, true);
    assert.deepEqual(
      (await Promise.all(results)).map((r) => r.ok),
      [true, true],
    );
  }));

test("close stops accepting, flushes what is queued, and is safe to call twice", () =>
  withMockTimers(async () => {
    const { send, calls } = manualSend();
    const b = createSendBatcher(opts(send, { lingerMs: 1000 }));
    const queued = b.enqueue("t", rec("a"));
    let closed = 0;
    void b.close().then(() => closed++);
    void b.close().then(() => closed++);
    assert.deepEqual(await b.enqueue("t", rec("b")), {
      ok: false,
      code: "closed",
      retriable: true,
      message: "the gateway is shutting down",
    });
    await settle();
    assert.equal(closed, 0, "close waits for queued records");
    calls[0]!.resolve();
    assert.equal((await queued).ok, true);
    await settle();
    assert.equal(closed, 2);
    await b.close();
    assert.deepEqual(
      calls.map((c) => c.ids),
      [["a"]],
    );
  }));

test("close is bounded by timeoutMs when Kafka never answers", () =>
  withMockTimers(async () => {
    const { send } = manualSend();
    const b = createSendBatcher(opts(send, { timeoutMs: 20 }));
    const r = track(b.enqueue("t", rec("a")));
    let closed = false;
    void b.close().then(() => (closed = true));
    await advance(19);
    assert.equal(closed, false);
    await advance(1);
    assert.equal(closed, true);
    assert.equal(!r.result?.ok && r.result?.code, "timeout");
  }));

test("several in-flight slots run topics in parallel, never two calls of one topic", () =>
  withMockTimers(async () => {
    const { send, calls } = manualSend();
    const b = createSendBatcher(opts(send, { maxInFlightBatches: 2, maxBatchRecords: 1 }));
    // A full batch (one record here) is ready at once, so t1 and u1 take both slots.
    for (const id of ["t1", "t2", "t3"]) void b.enqueue("t", rec(id));
    for (const id of ["u1", "u2"]) void b.enqueue("u", rec(id));
    void b.enqueue("v", rec("v1"));
    await settle();
    for (let resolved = 0; resolved < 6; resolved++) {
      const open = calls.slice(resolved).map((c) => c.topic);
      assert.ok(open.length <= 2, "at most maxInFlightBatches calls");
      assert.equal(new Set(open).size, open.length, "never two calls of one topic");
      calls[resolved]!.resolve();
      await settle();
    }
    // Round robin: a topic goes to the back of the line when it sends (u did, before v joined).
    assert.deepEqual(
      calls.map((c) => c.ids[0]),
      ["t1", "u1", "t2", "u2", "v1", "t3"],
    );
  }));

test("recordBytes counts value, key and headers in bytes", () => {
  assert.equal(recordBytes({ key: "é", value: Buffer.alloc(3) }), 5);
  assert.equal(recordBytes({ key: "k", value: Buffer.alloc(0), headers: { traceparent: "ab" } }), 14);
});

test("bad limits throw", () => {
  const { send } = manualSend();
  for (const bad of [
    { maxBatchRecords: 0 },
    { maxInFlightBatches: 1.5 },
    { lingerMs: -1 },
    { timeoutMs: 0 },
    { maxQueuedBytes: 10, maxBatchBytes: 11 },
  ]) {
    assert.throws(() => createSendBatcher({ send, ...bad }), RangeError, JSON.stringify(bad));
  }
  assert.doesNotThrow(() => createSendBatcher({ send, lingerMs: 0, timeoutMs: undefined }));
});

const cfgArb = fc.record({
  topics: fc.integer({ min: 1, max: 3 }),
  maxInFlightBatches: fc.integer({ min: 1, max: 3 }),
  maxBatchRecords: fc.integer({ min: 1, max: 6 }),
  maxBatchBytes: fc.integer({ min: 60, max: 150 }),
  lingerMs: fc.integer({ min: 0, max: 3 }),
  timeoutMs: fc.integer({ min: 5, max: 60 }),
  maxQueuedRecords: fc.integer({ min: 2, max: 30 }),
  maxQueuedBytes: fc.integer({ min: 150, max: 600 }),
});
const opArb = fc.record({
  topic: fc.nat({ max: 2 }),
  gapMs: fc.integer({ min: 0, max: 4 }),
  valueBytes: fc.integer({ min: 0, max: 40 }),
  flush: fc.nat({ max: 9 }).map((n) => n === 0),
});
const sendArb = fc.record({
  // Mostly faster than the timeout, sometimes slower (a late ack or a late failure).
  latencyMs: fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 8 }), weight: 4 },
    fc.integer({ min: 0, max: 40 }),
  ),
  outcome: fc.constantFrom("ok", "ok", "ok", "retriable", "fatal"),
});

test("property: per-topic order, no false ack, one result per record, bounded close", async () => {
  await fc.assert(
    fc.asyncProperty(
      cfgArb,
      fc.array(opArb, { maxLength: 80, size: "medium" }),
      fc.array(sendArb, { minLength: 1, maxLength: 20 }),
      (cfg, ops, behaviours) =>
        withMockTimers(async () => {
          const topicNames = Array.from({ length: cfg.topics }, (_, i) => `t${i}`);
          const perTopic = <T>(): Map<string, T[]> => new Map(topicNames.map((t) => [t, []]));
          const enqueued = perTopic<string>(); // every id, in enqueue order
          const passed = perTopic<string>(); // ids handed to send, in call order
          const written = perTopic<string>(); // ids of sends that resolved, in write order
          const offsetOf = new Map<string, string>();
          const inFlightTopics = new Set<string>();
          const problems: string[] = [];
          let callNo = 0;

          const send: SendFn = (topic, records) => {
            if (inFlightTopics.has(topic)) problems.push(`two calls of ${topic} in flight`);
            if (inFlightTopics.size >= cfg.maxInFlightBatches) problems.push("too many calls in flight");
            if (records.length > cfg.maxBatchRecords) problems.push("batch over maxBatchRecords");
            inFlightTopics.add(topic);
            const ids = records.map(idOf);
            passed.get(topic)!.push(...ids);
            const { latencyMs, outcome } = behaviours[callNo++ % behaviours.length]!;
            return new Promise((resolve, reject) => {
              setTimeout(() => {
                inFlightTopics.delete(topic);
                if (outcome === "retriable") return reject(kafkaUnavailable("down"));
                if (outcome === "fatal") return reject(kafkaRejected("refused"));
                const log = written.get(topic)!;
                resolve(
                  ids.map((id) => {
                    const offset = String(log.length);
                    log.push(id);
                    offsetOf.set(id, offset);
                    return { topic, partition: 0, offset };
                  }),
                );
              }, latencyMs);
            });
          };

          const b = createSendBatcher({ send, ...cfg });
          const results = new Map<string, EnqueueResult>();
          const flushes: Promise<void>[] = [];
          for (const [i, op] of ops.entries()) {
            const topic = topicNames[op.topic % cfg.topics]!;
            const id = `${topic}-${i}`;
            enqueued.get(topic)!.push(id);
            void b.enqueue(topic, rec(id, op.valueBytes)).then((r) => {
              if (results.has(id)) problems.push(`${id} resolved twice`);
              results.set(id, r);
              // At resolution time: an ack must follow the write, with the write's position.
              if (r.ok && offsetOf.get(id) !== r.position.offset) problems.push(`${id} acked unwritten`);
            });
            if (op.flush) flushes.push(b.flush());
            await advance(op.gapMs);
          }
          let closed = false;
          void b.close().then(() => (closed = true));
          let closeMs = 0;
          while (!closed && closeMs <= cfg.timeoutMs + 1) {
            await advance(1);
            closeMs += 1;
          }
          assert.ok(closed, "close resolves within timeoutMs");
          await Promise.all(flushes);
          await advance(45); // let late sends settle: they must change nothing
          assert.deepEqual(problems, []);

          const passedIds = new Set([...passed.values()].flat());
          const writtenIds = new Set(offsetOf.keys());
          for (const topic of topicNames) {
            const order = enqueued.get(topic)!;
            const indexOf = new Map(order.map((id, i) => [id, i]));
            const sentIdx = passed.get(topic)!.map((id) => indexOf.get(id)!);
            assert.ok(
              sentIdx.every((x, i) => i === 0 || x > sentIdx[i - 1]!),
              `${topic}: handed to send in enqueue order, each once`,
            );
            assert.deepEqual(
              written.get(topic),
              order.filter((id) => writtenIds.has(id)),
              `${topic}: written in enqueue order`,
            );
            for (const id of order) {
              const r = results.get(id);
              assert.ok(r !== undefined, `${id} resolved`);
              if (r.ok) continue;
              assert.equal(r.retriable, r.code !== "rejected");
              switch (r.code) {
                case "queue_full":
                  assert.ok(!passedIds.has(id), `${id}: queue_full yet sent`);
                  break;
                case "unavailable":
                case "rejected":
                  assert.ok(
                    passedIds.has(id) && !writtenIds.has(id),
                    `${id}: ${r.code} must be a failed send`,
                  );
                  break;
                case "timeout":
                  assert.equal(
                    passedIds.has(id),
                    /may still be written/.test(r.message),
                    `${id}: ${r.message}`,
                  );
                  break;
                default:
                  assert.fail(`${id}: unexpected ${r.code}`);
              }
            }
          }
          assert.deepEqual(b.stats(), {
            queuedRecords: 0,
            queuedBytes: 0,
            inFlightBatches: 0,
            inFlightRecords: 0,
          });
        }),
    ),
    { seed, numRuns: 200 },
  );
});
