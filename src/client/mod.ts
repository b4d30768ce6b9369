/**
 * The relay's participant client for Deno users. The implementation is
 * `bridge/relay_client.js`, one plain JavaScript module that browsers also
 * load from `/assets/relay_client.js`.
 *
 * @module
 */

export {
  ABNORMAL_CLOSE_CODE,
  CLOSE_CODES,
  CLOSE_TIMEOUT_MS,
  type CloseInfo,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_RECONNECT,
  MAX_DATAGRAMS_IN_FLIGHT,
  MAX_RECEIVED_SIGNAL_BYTES,
  PING_TIMEOUT_MS,
  type ReconnectOptions,
  RelayClient,
  type RelayClientEventMap,
  type RelayClientOptions,
  type RelayClientState,
  RelayCloseError,
  type ServerCertificateHash,
  type WebTransportInfo,
  WS_SEND_BUFFER_LIMIT_BYTES,
} from "../../bridge/relay_client.js";
