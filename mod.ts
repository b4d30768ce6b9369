/**
 * A voice relay (selective forwarding unit) for Deno: browsers join rooms
 * over WebSocket, native clients over WebTransport, and the relay forwards
 * each media packet to the other participants of the room.
 *
 * ```ts ignore
 * import { Relay } from "./mod.ts";
 * const relay = await Relay.start({ httpPort: 0, wtPort: 0 });
 * console.log(relay.httpUrl);
 * await relay.stop();
 * ```
 *
 * @module
 */

export {
  Relay,
  type RelayStartInit,
  type RelayState,
  type WebTransportInfo,
} from "./src/relay.ts";
export {
  type CloseInfo,
  type ReconnectOptions,
  RelayClient,
  type RelayClientEventMap,
  type RelayClientOptions,
  type RelayClientState,
  RelayCloseError,
  type ServerCertificateHash,
} from "./src/client/mod.ts";
export {
  DEFAULT_OPTIONS,
  type FederationOptions,
  type FederationPeerOptions,
  type FederationTrustedOptions,
  type LogFormat,
  type LogLevel,
  type RelayOptions,
  resolveOptions,
} from "./src/options.ts";
export { createLogger, type Logger, silentLogger } from "./src/log.ts";
export { RelayIdentity } from "./src/identity/identity.ts";
export { CLOSE, type CloseReason } from "./src/wire/close_codes.ts";
export {
  buildMediaPacket,
  checkMediaPacket,
  MAX_MEDIA_BYTES,
  MIN_MEDIA_BYTES,
} from "./src/wire/media.ts";
export type {
  ClientSignal,
  ParticipantInfo,
  RelaySignal,
} from "./src/wire/signals.ts";
export {
  encodeQualityReport,
  type Profile,
  PROFILES,
  type Tier,
  TIERS,
} from "./src/wire/quality_report.ts";
export { signJwt } from "./src/auth/jwt.ts";
