/**
 * Where `rt replay` puts the records: JSON Lines or an Avro object container file (on a file or
 * stdout), or back into a topic. Each sink respects backpressure and `close()` returns once
 * everything written is flushed (the file closed, the producer acknowledged).
 */
import { createWriteStream, type WriteStream } from "node:fs";
import type { Writable } from "node:stream";
import avro from "avsc";
import type { InRecord, OutRecord, Producer } from "../common/kafka/kafka.ts";
import { partitionForKey } from "../schemas/partition.ts";
import { REPLAYED_HEADER } from "../schemas/records.ts";
import type { ReplayRow } from "./replay-records.ts";

export interface ReplaySink {
  /** For the summary line: stdout, a file path, or `topic <name>`. */
  readonly destination: string;
  write(record: InRecord, row: ReplayRow): Promise<void>;
  /** Flushes and closes; safe to call twice. */
  close(): Promise<void>;
}

/** Records per produce request of a re-publish. */
export const REPUBLISH_BATCH = 500;

function output(path: string | undefined): { stream: Writable; file: WriteStream | null } {
  if (path === undefined) return { stream: process.stdout, file: null };
  const file = createWriteStream(path, { flags: "w" });
  return { stream: file, file };
}

/** Resolves once `stream` takes more; also when it failed or closed (the caller checks which). */
async function writeWithBackpressure(stream: Writable, chunk: unknown, also?: Writable): Promise<void> {
  if (stream.destroyed || also?.destroyed === true || stream.write(chunk)) return;
  await new Promise<void>((done) => {
    const ends = [stream, ...(also === undefined ? [] : [also])];
    const settle = () => {
      stream.off("drain", settle);
      for (const s of ends) s.off("error", settle).off("close", settle);
      done();
    };
    stream.once("drain", settle);
    for (const s of ends) s.once("error", settle).once("close", settle);
  });
}

/** Resolves when `stream` failed or closed. */
function gone(stream: Writable): Promise<void> {
  return new Promise((done) => stream.once("error", () => done()).once("close", () => done()));
}

/** The output closed under us (e.g. `rt replay ... | head`): not a failure, the reader is done. */
export class OutputClosedError extends Error {
  override readonly name = "OutputClosedError";
}

function failures(stream: Writable): { check(): void } {
  let error: Error | null = null;
  stream.on("error", (e: Error & { code?: string }) => {
    error ??= e.code === "EPIPE" ? new OutputClosedError("the output was closed", { cause: e }) : e;
  });
  return {
    check() {
      if (error !== null) throw error;
      if (stream.destroyed && !stream.writableFinished) throw new OutputClosedError("the output was closed");
    },
  };
}

async function closeFile(file: WriteStream): Promise<void> {
  if (file.closed) return;
  await new Promise<void>((done, fail) => {
    file.once("close", done);
    file.once("error", fail);
    file.end();
  });
}

/** One JSON object per line. */
export function jsonlSink(path: string | undefined): ReplaySink {
  const { stream, file } = output(path);
  const errors = failures(stream);
  let closing: Promise<void> | null = null;
  return {
    destination: path ?? "stdout",
    async write(_record, row) {
      errors.check();
      await writeWithBackpressure(stream, `${JSON.stringify(row)}\n`);
      errors.check();
    },
    close: () =>
      (closing ??= (async () => {
        if (file !== null) await closeFile(file);
        errors.check();
      })()),
  };
}

/** An Avro object container file (deflate blocks) with the rows' schema in its header. */
export function avroSink(path: string | undefined, schema: unknown): ReplaySink {
  const { stream, file } = output(path);
  const errors = failures(stream);
  const encoder = new avro.streams.BlockEncoder(schema as avro.Schema, { codec: "deflate" });
  const encoderErrors = failures(encoder);
  // stdout is never ended: other output may follow.
  encoder.pipe(stream, { end: file !== null });
  const ended = new Promise<void>((done) => encoder.once("end", done));
  const destinationGone = gone(stream);
  let closing: Promise<void> | null = null;
  return {
    destination: path ?? "stdout",
    async write(_record, row) {
      errors.check();
      encoderErrors.check();
      await writeWithBackpressure(encoder, row, stream);
      errors.check();
      encoderErrors.check();
    },
    close: () =>
      (closing ??= (async () => {
        encoder.end();
        await Promise.race([ended, destinationGone]);
        if (file !== null) await closeFile(file);
        errors.check();
        encoderErrors.check();
      })()),
  };
}

/**
 * Back into a topic: the same key and value bytes and headers, plus REPLAYED_HEADER naming the
 * source (`<topic>:<partition>:<offset>`), so a later replay skips them. The partition is the
 * key's under Kafka's default partitioner with the target's partition count (where the
 * consumers of the target expect it); the timestamp is the produce time, so the target's
 * retention counts from the re-publish.
 */
export function republishSink(producer: Producer, topic: string, partitionCount: number): ReplaySink {
  let pending: OutRecord[] = [];
  const flush = async (): Promise<void> => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    await producer.send(topic, batch);
  };
  let closing: Promise<void> | null = null;
  return {
    destination: `topic ${topic}`,
    async write(record) {
      if (record.value === null) return; // tombstones are for compacted topics, never re-published
      const key = record.key === null ? null : record.key.toString("utf8");
      pending.push({
        key: key ?? "", // every topic of ours is keyed; the port has no null key
        value: record.value,
        headers: {
          ...record.headers,
          [REPLAYED_HEADER]: `${record.topic}:${record.partition}:${record.offset}`,
        },
        partition: key === null ? record.partition % partitionCount : partitionForKey(key, partitionCount),
      });
      if (pending.length >= REPUBLISH_BATCH) await flush();
    },
    close: () => (closing ??= flush()),
  };
}
