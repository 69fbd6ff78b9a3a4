/**
 * An event frame built once for every socket that gets it, in each wire encoding: JSON text
 * (`data` spliced in as the JSON text it already is: no parse and re-serialize per record) and,
 * the first time an rt.v1.avro socket needs them, Avro bytes.
 */
import { encodeEventFrameAvro } from "../schemas/frame-codec.ts";

/** The wire encodings of the WebSocket protocol: rt.v1.json (the default) and rt.v1.avro. */
export type FrameEncoding = "json" | "avro";

export interface EventFields {
  /** Absent for a live channel event. */
  readonly cursor?: string;
  readonly id: string;
  readonly from: string;
  readonly to: string;
  readonly type: string;
  /** JSON text. */
  readonly data: string;
  readonly ts: number;
}

export class EventMessage {
  #avro: Buffer | undefined;

  private constructor(
    readonly json: string,
    private readonly fields: EventFields,
  ) {}

  /** Null when `data` is not JSON text: backends may produce directly. */
  static of(fields: EventFields): EventMessage | null {
    const text = eventFrameText(fields);
    return text === null ? null : new EventMessage(text, fields);
  }

  get avro(): Buffer {
    this.#avro ??= encodeEventFrameAvro(this.fields, this.fields.data);
    return this.#avro;
  }

  in(encoding: FrameEncoding): string | Buffer {
    return encoding === "avro" ? this.avro : this.json;
  }
}

/** The JSON text of an event frame; null when `data` is not JSON. */
export function eventFrameText(e: EventFields): string | null {
  try {
    JSON.parse(e.data);
  } catch {
    return null;
  }
  const cursor = e.cursor === undefined ? "" : `"cursor":${JSON.stringify(e.cursor)},`;
  return (
    `{"op":"event",${cursor}"id":${JSON.stringify(e.id)},` +
    `"from":${JSON.stringify(e.from)},"to":${JSON.stringify(e.to)},"type":${JSON.stringify(e.type)},` +
    `"data":${e.data},"ts":${e.ts}}`
  );
}
