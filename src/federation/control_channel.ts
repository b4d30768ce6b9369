/**
 * The control stream of a federation link: length-prefixed JSON messages
 * in both directions, with serialized writes and a bounded write queue.
 *
 * @module
 */

import { errorMessage } from "../log.ts";
import {
  type ControlMessage,
  MAX_CONTROL_FRAME_BYTES,
  parseControlMessage,
} from "../wire/federation_control.ts";
import { encodeFrame, FrameDecoder } from "../wire/stream_framing.ts";

/** Bytes queued for writing before the channel counts as stuck. */
export const MAX_CONTROL_QUEUE_BYTES = 4 * 1024 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Messages in and out of one bidirectional stream. */
export class ControlChannel {
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #reader: ReadableStreamDefaultReader<Uint8Array>;
  readonly #decoder = new FrameDecoder(MAX_CONTROL_FRAME_BYTES);
  readonly #pending: ControlMessage[] = [];
  #waiter: ((message: ControlMessage | null) => void) | null = null;
  #queuedBytes = 0;
  #writing: Promise<void> = Promise.resolve();
  #ended = false;
  #error: string | null = null;
  /** Receives every message once the handshake has consumed its own. */
  onMessage: ((message: ControlMessage) => void) | null = null;
  /** Called once when the stream ends or fails, with the reason. */
  onEnd: ((reason: string) => void) | null = null;

  constructor(stream: {
    readable: ReadableStream<Uint8Array>;
    writable: WritableStream<Uint8Array>;
  }) {
    this.#writer = stream.writable.getWriter();
    this.#reader = stream.readable.getReader();
    void this.#readLoop();
  }

  /** The reason the channel ended, or null while open. */
  get error(): string | null {
    return this.#error;
  }

  /** Queues one message. Returns false when the channel is closed or stuck. */
  send(message: ControlMessage): boolean {
    if (this.#ended) return false;

    const frame = encodeFrame(encoder.encode(JSON.stringify(message)));
    if (this.#queuedBytes + frame.length > MAX_CONTROL_QUEUE_BYTES) {
      this.#end(`control queue over ${MAX_CONTROL_QUEUE_BYTES} bytes`);
      return false;
    }

    this.#queuedBytes += frame.length;
    this.#writing = this.#writing.then(async () => {
      if (this.#ended) return;
      try {
        await this.#writer.write(frame);
      } catch (error) {
        this.#end(`control write failed: ${errorMessage(error)}`);
      } finally {
        this.#queuedBytes -= frame.length;
      }
    });
    return true;
  }

  /**
   * Returns the next message, or null when the channel ends or
   * `timeoutMs` passes first. Used by the handshake only.
   */
  next(timeoutMs: number): Promise<ControlMessage | null> {
    const queued = this.#pending.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    if (this.#ended) return Promise.resolve(null);

    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        resolve(null);
      }, timeoutMs);
      this.#waiter = (message) => {
        clearTimeout(timer);
        this.#waiter = null;
        resolve(message);
      };
    });
  }

  /** Ends the channel; further sends return false. Idempotent. */
  close(reason = "closed"): void {
    this.#end(reason);
  }

  async #readLoop(): Promise<void> {
    try {
      while (!this.#ended) {
        const { value, done } = await this.#reader.read();
        if (done) {
          this.#end("control stream ended");
          return;
        }
        for (const body of this.#decoder.push(value)) {
          this.#deliver(parseControlMessage(decoder.decode(body)));
        }
      }
    } catch (error) {
      this.#end(`control stream failed: ${errorMessage(error)}`);
    }
  }

  #deliver(message: ControlMessage): void {
    if (this.#waiter !== null) {
      this.#waiter(message);
    } else if (this.onMessage !== null) {
      this.onMessage(message);
    } else {
      this.#pending.push(message);
    }
  }

  #end(reason: string): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = reason;
    this.#waiter?.(null);
    this.#reader.cancel().catch(() => {});
    this.#writer.close().catch(() => {});
    this.onEnd?.(reason);
  }
}
