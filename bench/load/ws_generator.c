/*
 * WebSocket load generator in C: one epoll loop that keeps thousands of
 * participant connections, so that on a 2-core machine the generator costs
 * a fraction of what the relay under test costs. The Deno generator
 * (generator.ts, the project's RelayClient) costs about as much CPU per
 * packet as the relay itself, so on one core it saturates first.
 *
 * It implements the same load and the same measurements as
 * generator_core.js: rooms owned by one process, 100-byte media packets
 * every 20 ms per sender, the wall-clock send time (float64 ms since the
 * Unix epoch, host byte order, at packet byte 12) and the epoch (u32
 * big-endian, at packet byte 20) in the payload, the same logarithmic
 * latency histogram, and per-epoch counters.
 *
 * WebSocket client side (RFC 6455): HTTP/1.1 upgrade without checking
 * Sec-WebSocket-Accept, masked frames, pong for every ping.
 *
 * Two protocols ride on it, chosen per member:
 *
 * - `ws`: the relay's participant protocol on `/ws/<room>`. It sends
 *   `{"type":"hello"}`, counts the member as joined at the first text frame
 *   that contains "welcome", sends each packet as one binary frame and
 *   reads `[source u16][packet]` binary frames.
 * - `sio`: Socket.IO 4 (Engine.IO 4) on
 *   `/socket.io/?EIO=4&transport=websocket&room=<room>`, as socket.io-client
 *   speaks it: `40` to join the default namespace, `42["hello",{}]`, joined
 *   at `42["welcome",...]`, each packet emitted as `media` with one binary
 *   attachment (a `451-` text frame, then a binary frame), `3` for every
 *   Engine.IO ping `2`. Every binary frame the server sends is the
 *   attachment of a `media` event.
 *
 * Control protocol on stdin, one command per line; every reply is one
 * JSON line on stdout, shaped like the replies of generator_core.js:
 *
 *   join ID ROOMS (NAME MEMBERS (HOST:PORT:SEND:PROTOCOL)*)*
 *   epoch ID N
 *   report ID N
 *   close ID
 *
 * Build: cc -O2 -o ws_generator ws_generator.c -lm
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Load shape, as in generator_core.js. */
#define PACKET_BYTES 100
#define PACKET_INTERVAL_MS 20.0
#define TICK_MS 5.0
#define SEND_TIME_OFFSET 12
#define EPOCH_OFFSET 20

/* Histogram, as in histogram.js. */
#define HIST_BUCKETS 932
#define HIST_MIN_MS 0.001
#define HIST_GROWTH 1.02

/* Bytes queued per connection before a media packet is dropped. */
#define OUT_LIMIT (64 * 1024)
/* Largest frame read from the relay. */
#define IN_CAPACITY (64 * 1024)
/* Connections in their handshake at once. */
#define MAX_PENDING 64
/* Time from connect to welcome before a member counts as failed, ms. */
#define JOIN_TIMEOUT_MS 30000.0
/* Epochs whose counters are kept at once. */
#define EPOCH_SLOTS 16
#define MAX_LINE (4 * 1024 * 1024)

enum state { QUEUED, CONNECTING, HANDSHAKE, WELCOME, JOINED, CLOSED, FAILED };

struct join {
  long id;
  int total, done, joined, failed;
  char error[200];
};

enum protocol { RELAY_WS, SOCKET_IO };

struct client {
  int fd;
  enum state state;
  enum protocol protocol;
  int sends;
  int receivers;
  double started;  /* connect time, for the join timeout */
  double start_at; /* first packet time */
  uint64_t sent;
  uint16_t sequence;
  uint8_t mask[4];
  uint8_t *in;
  size_t in_len;
  uint8_t *out;
  size_t out_len;
  int watching_out;
  struct join *join;
  struct sockaddr_in addr;
  char request[640];
};

struct epoch_counters {
  uint32_t epoch;
  int used;
  double sent, expected, send_drops, received;
  double max_ms, max_timer_lag_ms;
  double hist[HIST_BUCKETS];
};

static int epfd;
static struct client **clients;
static size_t client_count, client_capacity;
static struct client **senders;
static size_t sender_count, sender_capacity;
static size_t queued_next; /* first client that may still be QUEUED */
static int pending;
static uint32_t current_epoch;
static struct epoch_counters epochs[EPOCH_SLOTS];
static double log_growth;

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static struct epoch_counters *counters_for(uint32_t epoch) {
  if (epoch == 0) return NULL;
  struct epoch_counters *slot = &epochs[epoch % EPOCH_SLOTS];
  if (!slot->used || slot->epoch != epoch) {
    memset(slot, 0, sizeof *slot);
    slot->epoch = epoch;
    slot->used = 1;
  }
  return slot;
}

static void record_latency(struct epoch_counters *c, double ms) {
  int index = 0;
  if (ms > HIST_MIN_MS) {
    index = (int)floor(log(ms / HIST_MIN_MS) / log_growth) + 1;
    if (index >= HIST_BUCKETS) index = HIST_BUCKETS - 1;
  }
  c->hist[index]++;
  c->received++;
  if (ms > c->max_ms) c->max_ms = ms;
}

static void watch(struct client *c, int out) {
  struct epoll_event event = {.events = EPOLLIN | (out ? EPOLLOUT : 0),
                              .data.ptr = c};
  epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &event);
  c->watching_out = out;
}

static void finish_join(struct client *c, int ok, const char *error);

/*
 * Closes the connection. A member that had not joined yet counts as a
 * failed join with `error`.
 */
static void close_client(struct client *c, enum state state,
                         const char *error) {
  if (c->fd >= 0) {
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
  }
  if (c->state == CONNECTING || c->state == HANDSHAKE || c->state == WELCOME) {
    pending--;
  }
  c->state = state;
  if (c->join != NULL) {
    finish_join(c, 0, error != NULL ? error : "closed before welcome");
  }
}

/* Writes what is queued; returns -1 when the connection failed. */
static int flush_out(struct client *c) {
  while (c->out_len > 0) {
    ssize_t n = write(c->fd, c->out, c->out_len);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      return -1;
    }
    memmove(c->out, c->out + n, c->out_len - (size_t)n);
    c->out_len -= (size_t)n;
  }
  if (c->out_len > 0 && !c->watching_out) watch(c, 1);
  if (c->out_len == 0 && c->watching_out) watch(c, 0);
  return 0;
}

/* Queues one masked frame; returns 0 when it does not fit (dropped). */
static int send_frame(struct client *c, int opcode, const uint8_t *payload,
                      size_t length) {
  uint8_t header[14];
  size_t header_length = 2;
  header[0] = (uint8_t)(0x80 | opcode);
  if (length < 126) {
    header[1] = (uint8_t)(0x80 | length);
  } else {
    header[1] = 0x80 | 126;
    header[2] = (uint8_t)(length >> 8);
    header[3] = (uint8_t)length;
    header_length = 4;
  }
  memcpy(header + header_length, c->mask, 4);
  header_length += 4;

  size_t total = header_length + length;
  if (c->out_len + total > OUT_LIMIT) return 0;
  uint8_t *at = c->out + c->out_len;
  memcpy(at, header, header_length);
  for (size_t i = 0; i < length; i++) {
    at[header_length + i] = payload[i] ^ c->mask[i & 3];
  }
  c->out_len += total;
  if (flush_out(c) < 0) {
    close_client(c, CLOSED, "write failed");
    return 0;
  }
  return 1;
}

static void add_sender(struct client *c) {
  if (sender_count == sender_capacity) {
    sender_capacity = sender_capacity ? sender_capacity * 2 : 1024;
    senders = realloc(senders, sender_capacity * sizeof *senders);
  }
  senders[sender_count++] = c;
}

static void reply_join(struct join *join) {
  printf("{\"id\":%ld,\"ok\":true,\"joined\":%d,\"failed\":%d,\"errors\":[",
         join->id, join->joined, join->failed);
  if (join->error[0] != '\0') printf("\"%s\"", join->error);
  printf("]}\n");
  fflush(stdout);
  free(join);
}

static void finish_join(struct client *c, int ok, const char *error) {
  struct join *join = c->join;
  c->join = NULL;
  if (join == NULL) return;
  join->done++;
  if (ok) {
    join->joined++;
  } else {
    join->failed++;
    if (join->error[0] == '\0') {
      snprintf(join->error, sizeof join->error, "%s", error);
    }
  }
  if (join->done == join->total) reply_join(join);
}

static void fail(struct client *c, const char *error) {
  close_client(c, FAILED, error);
}

static void on_media(const uint8_t *frame, size_t length, double now) {
  /* frame = [source u16][packet] */
  if (length < 2 + EPOCH_OFFSET + 4) return;
  const uint8_t *packet = frame + 2;
  uint32_t epoch = (uint32_t)packet[EPOCH_OFFSET] << 24 |
                   (uint32_t)packet[EPOCH_OFFSET + 1] << 16 |
                   (uint32_t)packet[EPOCH_OFFSET + 2] << 8 |
                   (uint32_t)packet[EPOCH_OFFSET + 3];
  struct epoch_counters *counters = counters_for(epoch);
  if (counters == NULL) return;
  double sent_at;
  memcpy(&sent_at, packet + SEND_TIME_OFFSET, sizeof sent_at);
  record_latency(counters, now - sent_at);
}

static void mark_joined(struct client *c) {
  c->state = JOINED;
  pending--;
  c->start_at = now_ms() + drand48() * PACKET_INTERVAL_MS;
  if (c->sends) add_sender(c);
  finish_join(c, 1, NULL);
}

static int send_text(struct client *c, const char *text) {
  return send_frame(c, 0x1, (const uint8_t *)text, strlen(text));
}

/* Handles one Engine.IO text packet of a Socket.IO member. */
static void on_socket_io_text(struct client *c, const uint8_t *payload,
                              size_t length) {
  if (length == 0) return;
  if (payload[0] == '2' && length == 1) { /* Engine.IO ping */
    send_text(c, "3");
    return;
  }
  if (c->state != WELCOME) return;
  if (payload[0] == '0') { /* Engine.IO open: join the default namespace */
    send_text(c, "40");
  } else if (length >= 2 && payload[0] == '4' && payload[1] == '0') {
    send_text(c, "42[\"hello\",{}]");
  } else if (length >= 2 && payload[0] == '4' && payload[1] == '4') {
    fail(c, "Socket.IO connect error");
  } else if (length >= 12 && memcmp(payload, "42[\"welcome\"", 12) == 0) {
    mark_joined(c);
  }
}

/* Parses complete frames from the input buffer. */
static void parse_frames(struct client *c) {
  size_t offset = 0;
  double now = 0;
  while (c->in_len - offset >= 2) {
    uint8_t *frame = c->in + offset;
    int opcode = frame[0] & 0x0f;
    int masked = frame[1] & 0x80;
    uint64_t length = frame[1] & 0x7f;
    size_t header = 2;
    if (length == 126) {
      if (c->in_len - offset < 4) break;
      length = (uint64_t)frame[2] << 8 | frame[3];
      header = 4;
    } else if (length == 127) {
      if (c->in_len - offset < 10) break;
      length = 0;
      for (int i = 0; i < 8; i++) length = length << 8 | frame[2 + i];
      header = 10;
    }
    if (masked) header += 4;
    if (length > IN_CAPACITY - header) {
      fail(c, "frame over the input buffer");
      return;
    }
    if (c->in_len - offset < header + length) break;
    uint8_t *payload = frame + header;
    if (masked) {
      for (uint64_t i = 0; i < length; i++) payload[i] ^= frame[header - 4 + (i & 3)];
    }

    switch (opcode) {
    case 0x1: /* text: signals, or Socket.IO packets */
      if (c->protocol == SOCKET_IO) {
        on_socket_io_text(c, payload, length);
        if (c->fd < 0) return;
      } else if (c->state == WELCOME &&
                 memmem(payload, length, "\"welcome\"", 9) != NULL) {
        mark_joined(c);
      }
      break;
    case 0x2: /* binary: a relayed media frame */
      if (now == 0) now = now_ms();
      on_media(payload, length, now);
      break;
    case 0x8: /* close */
      close_client(c, c->state == JOINED ? CLOSED : FAILED,
                   "closed before welcome");
      return;
    case 0x9: /* ping */
      send_frame(c, 0xA, payload, length);
      if (c->fd < 0) return;
      break;
    default:
      break;
    }
    offset += header + length;
  }
  if (offset > 0) {
    memmove(c->in, c->in + offset, c->in_len - offset);
    c->in_len -= offset;
  }
}

static void on_readable(struct client *c) {
  ssize_t n = read(c->fd, c->in + c->in_len, IN_CAPACITY - c->in_len);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    close_client(c, c->state == JOINED ? CLOSED : FAILED,
                 "connection closed during the handshake");
    return;
  }
  c->in_len += (size_t)n;

  if (c->state == HANDSHAKE) {
    uint8_t *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (end == NULL) {
      if (c->in_len == IN_CAPACITY) fail(c, "upgrade response too large");
      return;
    }
    if (c->in_len < 12 || memcmp(c->in, "HTTP/1.1 101", 12) != 0) {
      char error[120];
      snprintf(error, sizeof error, "upgrade rejected: %.40s", (char *)c->in);
      for (char *p = error; *p; p++) {
        if (*p == '\r' || *p == '\n' || *p == '"' || *p == '\\') *p = ' ';
      }
      fail(c, error);
      return;
    }
    size_t consumed = (size_t)(end - c->in) + 4;
    memmove(c->in, c->in + consumed, c->in_len - consumed);
    c->in_len -= consumed;
    c->state = WELCOME;
    if (c->protocol == RELAY_WS && !send_text(c, "{\"type\":\"hello\"}")) {
      if (c->fd >= 0) fail(c, "hello not sent");
      return;
    }
  }
  if (c->state == WELCOME || c->state == JOINED) parse_frames(c);
}

static void on_writable(struct client *c) {
  if (c->state == CONNECTING) {
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
      fail(c, strerror(error));
      return;
    }
    c->state = HANDSHAKE;
    size_t request_length = strlen(c->request);
    memcpy(c->out, c->request, request_length);
    c->out_len = request_length;
  }
  if (flush_out(c) < 0) {
    close_client(c, c->state == JOINED ? CLOSED : FAILED, "write failed");
  }
}

/* Starts queued connections while fewer than MAX_PENDING are in flight. */
static void start_connections(void) {
  while (pending < MAX_PENDING && queued_next < client_count) {
    struct client *c = clients[queued_next++];
    if (c->state != QUEUED) continue;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
      close_client(c, FAILED, strerror(errno));
      continue;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c->state = CONNECTING;
    c->started = now_ms();
    pending++;
    struct epoll_event event = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    c->watching_out = 1;
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &event);
    if (connect(c->fd, (struct sockaddr *)&c->addr, sizeof c->addr) < 0 &&
        errno != EINPROGRESS) {
      fail(c, strerror(errno));
    }
  }
}

static void expire_joins(double now) {
  for (size_t i = 0; i < client_count; i++) {
    struct client *c = clients[i];
    if ((c->state == CONNECTING || c->state == HANDSHAKE ||
         c->state == WELCOME) &&
        now - c->started > JOIN_TIMEOUT_MS) {
      fail(c, "no welcome within 30 s");
    }
  }
}

static void send_media(struct client *c, uint32_t epoch,
                       struct epoch_counters *counters) {
  uint8_t packet[PACKET_BYTES] = {0};
  uint16_t sequence = ++c->sequence;
  double now = now_ms();
  uint32_t elapsed = (uint32_t)(now - c->start_at);
  packet[2] = (uint8_t)(sequence >> 8);
  packet[3] = (uint8_t)sequence;
  packet[4] = (uint8_t)(elapsed >> 24);
  packet[5] = (uint8_t)(elapsed >> 16);
  packet[6] = (uint8_t)(elapsed >> 8);
  packet[7] = (uint8_t)elapsed;
  memcpy(packet + SEND_TIME_OFFSET, &now, sizeof now);
  packet[EPOCH_OFFSET] = (uint8_t)(epoch >> 24);
  packet[EPOCH_OFFSET + 1] = (uint8_t)(epoch >> 16);
  packet[EPOCH_OFFSET + 2] = (uint8_t)(epoch >> 8);
  packet[EPOCH_OFFSET + 3] = (uint8_t)epoch;

  int ok;
  if (c->protocol == SOCKET_IO) {
    /* The event and its attachment must both fit, or neither is sent. */
    static const char event[] = "451-[\"media\",{\"_placeholder\":true,\"num\":0}]";
    size_t needed = (6 + sizeof event - 1) + (6 + PACKET_BYTES);
    ok = c->out_len + needed <= OUT_LIMIT && send_text(c, event) &&
         c->state == JOINED && send_frame(c, 0x2, packet, PACKET_BYTES);
  } else {
    ok = send_frame(c, 0x2, packet, PACKET_BYTES);
  }
  if (counters == NULL) return;
  if (ok) {
    counters->sent++;
    counters->expected += c->receivers;
  } else {
    counters->send_drops++;
  }
}

static double next_tick_at;

static void tick(void) {
  double now = now_ms();
  double lag = now - next_tick_at;
  next_tick_at += TICK_MS;
  if (next_tick_at < now) next_tick_at = now + TICK_MS;

  uint32_t epoch = current_epoch;
  struct epoch_counters *counters = counters_for(epoch);
  if (counters != NULL && lag > counters->max_timer_lag_ms) {
    counters->max_timer_lag_ms = lag;
  }
  for (size_t i = 0; i < sender_count; i++) {
    struct client *c = senders[i];
    if (c->state != JOINED) continue;
    uint64_t due = (uint64_t)floor((now - c->start_at) / PACKET_INTERVAL_MS) + 1;
    if (now < c->start_at) due = 0;
    while (c->sent < due && c->state == JOINED) {
      c->sent++;
      send_media(c, epoch, counters);
    }
  }
  if (pending > 0) expire_joins(now);
}

static struct client *new_client(const char *host, int port, const char *room,
                                 int sends, int receivers,
                                 enum protocol protocol, struct join *join) {
  struct client *c = calloc(1, sizeof *c);
  c->fd = -1;
  c->state = QUEUED;
  c->protocol = protocol;
  c->sends = sends;
  c->receivers = receivers;
  c->join = join;
  c->in = malloc(IN_CAPACITY);
  c->out = malloc(OUT_LIMIT);
  uint32_t mask = (uint32_t)lrand48();
  memcpy(c->mask, &mask, 4);
  c->addr.sin_family = AF_INET;
  c->addr.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &c->addr.sin_addr);
  char path[300];
  if (protocol == SOCKET_IO) {
    snprintf(path, sizeof path, "/socket.io/?EIO=4&transport=websocket&room=%s",
             room);
  } else {
    snprintf(path, sizeof path, "/ws/%s", room);
  }
  snprintf(c->request, sizeof c->request,
           "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n\r\n",
           path, host, port);
  if (client_count == client_capacity) {
    client_capacity = client_capacity ? client_capacity * 2 : 1024;
    clients = realloc(clients, client_capacity * sizeof *clients);
  }
  clients[client_count++] = c;
  return c;
}

/* join ID ROOMS (NAME MEMBERS (HOST:PORT:SEND:PROTOCOL)*)* */
static void command_join(long id, char **save) {
  struct join *join = calloc(1, sizeof *join);
  join->id = id;
  char *token = strtok_r(NULL, " ", save);
  int rooms = token ? atoi(token) : 0;
  for (int r = 0; r < rooms; r++) {
    char *name = strtok_r(NULL, " ", save);
    char *count_token = strtok_r(NULL, " ", save);
    if (name == NULL || count_token == NULL) break;
    int members = atoi(count_token);
    for (int m = 0; m < members; m++) {
      char *member = strtok_r(NULL, " ", save);
      if (member == NULL) break;
      char host[64], protocol[8] = "ws";
      int port = 0, sends = 0;
      if (sscanf(member, "%63[^:]:%d:%d:%7s", host, &port, &sends, protocol) <
          3) {
        continue;
      }
      join->total++;
      new_client(host, port, name, sends, members - 1,
                 strcmp(protocol, "sio") == 0 ? SOCKET_IO : RELAY_WS, join);
    }
  }
  if (join->total == 0) {
    reply_join(join);
    return;
  }
  start_connections();
}

static void command_report(long id, uint32_t epoch) {
  struct epoch_counters empty = {0};
  struct epoch_counters *c = &epochs[epoch % EPOCH_SLOTS];
  if (!c->used || c->epoch != epoch) c = &empty;
  int closed = 0, joined = 0;
  for (size_t i = 0; i < client_count; i++) {
    if (clients[i]->state == CLOSED) closed++;
    if (clients[i]->state == JOINED || clients[i]->state == CLOSED) joined++;
  }
  printf("{\"id\":%ld,\"ok\":true,\"sent\":%.0f,\"expected\":%.0f,"
         "\"sendDrops\":%.0f,\"received\":%.0f,\"latency\":{\"buckets\":[",
         id, c->sent, c->expected, c->send_drops, c->received);
  int first = 1;
  for (int i = 0; i < HIST_BUCKETS; i++) {
    if (c->hist[i] == 0) continue;
    printf("%s[%d,%.0f]", first ? "" : ",", i, c->hist[i]);
    first = 0;
  }
  printf("],\"max\":%.6f},\"maxTimerLagMs\":%.3f,\"clients\":%d,"
         "\"closed\":%d}\n",
         c->max_ms, c->max_timer_lag_ms, joined, closed);
  fflush(stdout);
  if (c != &empty) c->used = 0;
}

/* Returns 1 when the process should exit. */
static int handle_line(char *line) {
  char *save = NULL;
  char *op = strtok_r(line, " ", &save);
  if (op == NULL) return 0;
  char *id_token = strtok_r(NULL, " ", &save);
  long id = id_token ? atol(id_token) : -1;
  if (strcmp(op, "join") == 0) {
    command_join(id, &save);
  } else if (strcmp(op, "epoch") == 0) {
    char *n = strtok_r(NULL, " ", &save);
    current_epoch = n ? (uint32_t)strtoul(n, NULL, 10) : 0;
    printf("{\"id\":%ld,\"ok\":true}\n", id);
    fflush(stdout);
  } else if (strcmp(op, "report") == 0) {
    char *n = strtok_r(NULL, " ", &save);
    command_report(id, n ? (uint32_t)strtoul(n, NULL, 10) : 0);
  } else if (strcmp(op, "close") == 0) {
    for (size_t i = 0; i < client_count; i++) {
      struct client *c = clients[i];
      if (c->state == JOINED) {
        static const uint8_t normal[] = {0x03, 0xe8};
        send_frame(c, 0x8, normal, sizeof normal);
      }
      if (c->fd >= 0) close(c->fd);
    }
    printf("{\"id\":%ld,\"ok\":true}\n", id);
    fflush(stdout);
    return 1;
  } else {
    printf("{\"id\":%ld,\"ok\":false,\"error\":\"unknown command\"}\n", id);
    fflush(stdout);
  }
  return 0;
}

int main(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  srand48((long)now_ms() ^ getpid());
  log_growth = log(HIST_GROWTH);
  epfd = epoll_create1(0);
  fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
  struct epoll_event stdin_event = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &stdin_event);

  char *line = malloc(MAX_LINE);
  size_t line_length = 0;
  printf("{\"id\":0,\"ok\":true,\"ready\":true}\n");
  fflush(stdout);

  next_tick_at = now_ms() + TICK_MS;
  struct epoll_event events[256];
  for (;;) {
    double wait = next_tick_at - now_ms();
    int timeout = wait <= 0 ? 0 : (int)ceil(wait);
    int n = epoll_wait(epfd, events, 256, timeout);
    for (int i = 0; i < n; i++) {
      struct client *c = events[i].data.ptr;
      if (c == NULL) {
        ssize_t got = read(0, line + line_length, MAX_LINE - 1 - line_length);
        if (got == 0) return 0;
        if (got < 0) continue;
        line_length += (size_t)got;
        char *start = line;
        char *newline;
        while ((newline = memchr(start, '\n', line_length - (size_t)(start - line)))) {
          *newline = '\0';
          if (handle_line(start)) return 0;
          start = newline + 1;
        }
        line_length -= (size_t)(start - line);
        memmove(line, start, line_length);
        continue;
      }
      if (c->fd < 0) continue;
      if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (c->state == CONNECTING) {
          on_writable(c);
          if (c->fd < 0) continue;
        }
        on_readable(c);
      }
      if (c->fd >= 0 && (events[i].events & EPOLLOUT)) on_writable(c);
    }
    if (now_ms() >= next_tick_at) tick();
    start_connections();
  }
}
