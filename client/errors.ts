/**
 * The client's error catalogue: every failure the SDK reports has a stable `code` and says
 * whether trying again can succeed. Codes are the protocol's (schemas/errors.ts: a failed ack,
 * an `error` frame), the close-code table's names (a session refused for good), or the client's
 * own below.
 */
import type { CloseName } from "../schemas/close-codes.ts";
import { ERROR_CODES, type ErrorCode } from "../schemas/errors.ts";

export const CLIENT_ERROR_CODES = {
  ack_timeout: {
    retriable: true,
    description: "No ack arrived in time; the send may or may not have been written.",
  },
  client_closed: { retriable: false, description: "close() was called before the send was acked." },
  queue_full: { retriable: true, description: "Too many sends are waiting for their ack." },
  duplicate_id: { retriable: false, description: "A send with this id is still waiting for its ack." },
  redirect_loop: { retriable: true, description: "Gateways redirected more times than maxRedirects." },
  router_error: { retriable: true, description: "The router could not be reached or gave a bad answer." },
  bad_server_frame: { retriable: true, description: "The server sent a frame this client cannot read." },
  token_provider: { retriable: true, description: "The token provider threw or returned no token." },
  connect_failed: { retriable: true, description: "The WebSocket could not be opened or written to." },
  connect_timeout: { retriable: true, description: "No welcome arrived in time after connecting." },
  heartbeat_timeout: { retriable: true, description: "Nothing arrived from the server in time." },
} as const;

export type ClientErrorCode = keyof typeof CLIENT_ERROR_CODES;
export type RealtimeErrorCode = ClientErrorCode | ErrorCode | CloseName;

/** One class, told apart by `code`; `retriable` comes from the code's table. */
export class RealtimeError extends Error {
  override readonly name = "RealtimeError";
  readonly code: RealtimeErrorCode;
  readonly retriable: boolean;
  /**
   * For a failed send, join, leave, subscribe or unsubscribe: the request's id. To try again
   * after `ack_timeout` (the message may or may not have been written), send with this id, so
   * receivers drop the copy.
   */
  readonly id: string | undefined;

  constructor(
    code: RealtimeErrorCode,
    message: string,
    options: { retriable?: boolean; cause?: unknown; id?: string } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = options.retriable ?? isRetriable(code);
    this.id = options.id;
  }
}

function isRetriable(code: RealtimeErrorCode): boolean {
  if (Object.hasOwn(CLIENT_ERROR_CODES, code)) return CLIENT_ERROR_CODES[code as ClientErrorCode].retriable;
  if (Object.hasOwn(ERROR_CODES, code)) return ERROR_CODES[code as ErrorCode].retriable;
  // A close-table name without an error-code twin (moved, restart, slow...): those reconnect.
  return true;
}
