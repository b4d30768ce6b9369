/**
 * Length-prefixed frames on a byte stream: `[u32 big-endian length][body]`.
 * WebTransport carries signals this way on the session's first
 * bidirectional stream.
 *
 * @module
 */

/** Length of the frame prefix, in bytes. */
export const FRAME_PREFIX_BYTES = 4;

/** Raised when a frame announces a body over the decoder's limit. */
export class FrameTooLargeError extends RangeError {
  readonly length: number;

  constructor(length: number, limit: number) {
    super(`Frame too large: ${length} bytes, the maximum is ${limit}`);
    this.name = "FrameTooLargeError";
    this.length = length;
  }
}

/** Prefixes `body` with its length. */
export function encodeFrame(body: Uint8Array): Uint8Array {
  const frame = new Uint8Array(FRAME_PREFIX_BYTES + body.length);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, FRAME_PREFIX_BYTES);
  return frame;
}

/**
 * Splits a byte stream into frame bodies. Buffers at most one frame:
 * `maxFrameBytes` plus the prefix.
 */
export class FrameDecoder {
  #maxFrameBytes: number;
  #buffer = new Uint8Array(0);

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet returned as a frame. */
  get buffered(): number {
    return this.#buffer.length;
  }

  /**
   * Adds a chunk and returns the frames it completes. Throws
   * {@linkcode FrameTooLargeError} as soon as a prefix announces a body over
   * the limit, before the body arrives.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    let buffer = chunk;
    if (this.#buffer.length > 0) {
      buffer = new Uint8Array(this.#buffer.length + chunk.length);
      buffer.set(this.#buffer);
      buffer.set(chunk, this.#buffer.length);
    }

    const frames: Uint8Array[] = [];
    let offset = 0;
    while (buffer.length - offset >= FRAME_PREFIX_BYTES) {
      const length = new DataView(
        buffer.buffer,
        buffer.byteOffset + offset,
        FRAME_PREFIX_BYTES,
      ).getUint32(0);
      if (length > this.#maxFrameBytes) {
        throw new FrameTooLargeError(length, this.#maxFrameBytes);
      }
      const end = offset + FRAME_PREFIX_BYTES + length;
      if (end > buffer.length) break;
      frames.push(buffer.slice(offset + FRAME_PREFIX_BYTES, end));
      offset = end;
    }

    this.#buffer = buffer.slice(offset);
    return frames;
  }
}
