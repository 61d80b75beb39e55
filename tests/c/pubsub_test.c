/*
 * pubsub_test: publish/subscribe seen from C, against raw WebSocket clients
 * (plain sockets, handshake and frame parsing written here) that live on a
 * reactor of their own through wsconn_reactor_watch.
 *
 *   pubsub_test fanout [N]   N subscribers (default 10000) in a child process
 *                            (each process needs ~N file descriptors); the
 *                            server publishes 3 messages (32 B, 1 KiB, 8 KiB);
 *                            every client must get each exactly once, in
 *                            order, byte-exact.
 *   pubsub_test slow         max output 64 KiB; a subscriber that does not
 *                            read: skipped by a WSCONN_SLOW_SKIP topic while the
 *                            others get everything (and it gets what comes
 *                            once it reads again, never a message twice);
 *                            closed with 1008 by a WSCONN_SLOW_CLOSE topic.
 *   pubsub_test threads      two server reactors on two threads sharing
 *                            topics, clients on both; one publisher on a
 *                            reactor's thread (wsconn_publish), one on another
 *                            thread (wsconn_publish_async): every client gets
 *                            every message once, in order per publisher.
 *
 * tests/runtime_pubsub.rs runs each (also with ASan + UBSan). Prints
 * "N passed, M failed"; exits 1 if anything failed.
 */
#include "wsconn.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void raise_nofile(rlim_t needed) {
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
    if (lim.rlim_cur < needed) {
        lim.rlim_cur = needed < lim.rlim_max ? needed : lim.rlim_max;
        setrlimit(RLIMIT_NOFILE, &lim);
    }
}

/* ------------------------------------------------------------------ */
/* Messages: "P:SEQ:" then letters derived from SEQ, SIZE bytes in all. */

static size_t make_message(char *out, char publisher, long seq, size_t size) {
    int head = snprintf(out, size + 1, "%c:%ld:", publisher, seq);
    for (size_t i = (size_t)head; i < size; i++) out[i] = (char)('a' + (seq * 7 + (long)i) % 26);
    return size;
}

/* Parses and checks a message; returns its sequence number, -1 if damaged. */
static long check_message(const uint8_t *data, size_t len, char *publisher) {
    char head[32];
    size_t n = len < sizeof head - 1 ? len : sizeof head - 1;
    memcpy(head, data, n);
    head[n] = 0;
    long seq;
    char p;
    int used;
    if (sscanf(head, "%c:%ld:%n", &p, &seq, &used) != 2) return -1;
    for (size_t i = (size_t)used; i < len; i++)
        if (data[i] != (uint8_t)('a' + (seq * 7 + (long)i) % 26)) return -1;
    *publisher = p;
    return seq;
}

/* ------------------------------------------------------------------ */
/* Raw clients on a reactor (wsconn_reactor_watch).                     */

struct client {
    int fd;
    uint8_t *buf;
    size_t len, cap;
    int open;          /* the 101 arrived */
    long received;     /* data messages */
    long last_seq[2];  /* per publisher ('A', anything else) */
    long errors;
    int close_code;    /* -1: no close frame */
    int eof;
    size_t expect_len[8]; /* fanout: the length of message SEQ (SEQ < 8) */
    int strict;        /* every publisher's SEQ must be its last + 1 */
};

static const char REQUEST[] =
    "GET /room HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

static void on_frame(struct client *c, int opcode, const uint8_t *payload, size_t len) {
    if (opcode == 8) {
        c->close_code = len >= 2 ? (payload[0] << 8 | payload[1]) : 1005;
        return;
    }
    if (opcode != 1) {
        c->errors++;
        return;
    }
    char publisher = 0;
    long seq = check_message(payload, len, &publisher);
    int who = publisher == 'A' ? 0 : 1;
    if (seq < 0 || seq <= c->last_seq[who] || (c->strict && seq != c->last_seq[who] + 1)) {
        if (c->errors++ < 3)
            fprintf(stderr, "client fd %d: message %c:%ld after %ld (len %zu)\n", c->fd, publisher, seq,
                    c->last_seq[who], len);
    } else if (seq < 8 && c->expect_len[seq] && c->expect_len[seq] != len) {
        c->errors++;
    }
    c->last_seq[who] = seq;
    c->received++;
}

/* Handles the response and the frames in data[0..len); returns the bytes used. */
static size_t parse(struct client *c, const uint8_t *data, size_t len) {
    size_t pos = 0;
    if (!c->open) {
        const uint8_t *end = memmem(data, len, "\r\n\r\n", 4);
        if (!end) return 0;
        if (len < 12 || memcmp(data, "HTTP/1.1 101", 12) != 0) c->errors++;
        c->open = 1;
        pos = (size_t)(end - data) + 4;
    }
    while (len - pos >= 2) {
        const uint8_t *f = data + pos;
        size_t avail = len - pos, head = 2;
        uint64_t plen = f[1] & 0x7f;
        if ((f[1] & 0x80) || !(f[0] & 0x80)) c->errors++; /* masked, or not final */
        if (plen == 126) {
            if (avail < 4) break;
            plen = (uint64_t)f[2] << 8 | f[3];
            head = 4;
        } else if (plen == 127) {
            if (avail < 10) break;
            plen = 0;
            for (int i = 0; i < 8; i++) plen = plen << 8 | f[2 + i];
            head = 10;
        }
        if (avail < head + plen) break;
        on_frame(c, f[0] & 0x0f, f + head, (size_t)plen);
        pos += head + (size_t)plen;
    }
    return pos;
}

/* Keeps data[0..len) as the client's unparsed input. */
static void keep(struct client *c, const uint8_t *data, size_t len) {
    c->len = len;
    if (len == 0) return;
    if (len > c->cap) {
        c->cap = len * 2;
        c->buf = realloc(c->buf, c->cap);
    }
    memmove(c->buf, data, len);
}

static uint8_t scratch[1 << 16];

static void client_readable(wsconn_reactor_t *r, int fd, int events, void *arg) {
    (void)events;
    struct client *c = arg;
    for (;;) {
        ssize_t n = read(fd, scratch, sizeof scratch);
        if (n > 0) {
            if (c->len == 0) {
                size_t used = parse(c, scratch, (size_t)n);
                keep(c, scratch + used, (size_t)n - used);
            } else {
                if (c->len + (size_t)n > c->cap) {
                    c->cap = (c->len + (size_t)n) * 2;
                    c->buf = realloc(c->buf, c->cap);
                }
                memcpy(c->buf + c->len, scratch, (size_t)n);
                c->len += (size_t)n;
                size_t used = parse(c, c->buf, c->len);
                keep(c, c->buf + used, c->len - used);
            }
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        c->eof = 1;
        wsconn_reactor_unwatch(r, fd);
        close(fd);
        c->fd = -1;
        return;
    }
}

/* Connects to 127.0.0.1:port, sends the handshake, watches the socket. */
static int client_connect(wsconn_reactor_t *r, struct client *c, int port, int rcvbuf) {
    c->last_seq[0] = c->last_seq[1] = -1;
    c->close_code = -1;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return -1;
    if (rcvbuf) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) != 0) return -1;
    if (write(c->fd, REQUEST, sizeof REQUEST - 1) != (ssize_t)(sizeof REQUEST - 1)) return -1;
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);
    return wsconn_reactor_watch(r, c->fd, WSCONN_WATCH_READ, client_readable, c);
}

static void client_free(wsconn_reactor_t *r, struct client *c) {
    if (c->fd >= 0) {
        wsconn_reactor_unwatch(r, c->fd);
        close(c->fd);
    }
    free(c->buf);
}

/* ------------------------------------------------------------------ */
/* A server: each connection subscribes to `topic` once open.           */

struct server {
    wsconn_reactor_t *reactor;
    wsconn_acceptor_t *acceptor;
    const char *topic;
    atomic_int open;     /* connections subscribed */
    atomic_int closed;
    int last_close_code;
    long errors;
};

struct conn {
    wsconn_t *con;
    struct server *srv;
};

static void server_build(int fd, void *arg) {
    (void)fd;
    struct conn *k = arg;
    const char *path = wsconn_request_path(k->con);
    if (path == NULL || strcmp(path, "/room") != 0) k->srv->errors++;
    if (wsconn_subscribe(k->con, k->srv->topic) != WSCONN_OK) k->srv->errors++;
    if (wsconn_subscribe(k->con, k->srv->topic) != WSCONN_OK) k->srv->errors++; /* twice is once */
    if (!wsconn_is_subscribed(k->con, k->srv->topic)) k->srv->errors++;
    atomic_fetch_add(&k->srv->open, 1);
}

static void server_close(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    (void)reason;
    (void)reason_len;
    struct conn *k = arg;
    k->srv->last_close_code = code;
    atomic_fetch_add(&k->srv->closed, 1);
    wsconn_release(con);
    free(k);
}

static int server_accept(int fd, void *arg) {
    struct conn *k = calloc(1, sizeof *k);
    k->srv = arg;
    k->con = wsconn_create(k->srv->reactor);
    wsconn_set_build_func(k->con, server_build, k);
    wsconn_set_close_ex_func(k->con, server_close, k);
    wsconn_set_fd(k->con, fd);
    return wsconn_start(k->con);
}

static int server_start(struct server *s, wsconn_reactor_t *r, const char *topic) {
    s->reactor = r;
    s->topic = topic;
    s->acceptor = wsconn_acceptor_create(r);
    wsconn_acceptor_set_accept_func(s->acceptor, server_accept, s);
    if (wsconn_acceptor_start(s->acceptor, "127.0.0.1", 0) != WSCONN_OK) return -1;
    return wsconn_acceptor_port(s->acceptor);
}

/* Dispatches until `done(arg)` or `ms` pass; returns whether it got done. */
static int dispatch_until(wsconn_reactor_t *r, int (*done)(void *), void *arg, double ms) {
    double end = now_ms() + ms;
    while (!done(arg)) {
        if (now_ms() > end) return 0;
        wsconn_reactor_dispatch(r, 10);
    }
    return 1;
}

/* ------------------------------------------------------------------ */
/* fanout                                                               */

static const size_t FANOUT_SIZES[] = {32, 1024, 8192};
#define FANOUT_MESSAGES 3

struct many {
    struct client *clients;
    int n;
    long want;
};

static int all_open(void *arg) {
    struct many *m = arg;
    for (int i = 0; i < m->n; i++)
        if (!m->clients[i].open) return 0;
    return 1;
}

static int all_received(void *arg) {
    struct many *m = arg;
    for (int i = 0; i < m->n; i++)
        if (m->clients[i].received < m->want) return 0;
    return 1;
}

static int fanout_clients(int port, int n) {
    wsconn_reactor_t *r = wsconn_reactor_create();
    struct client *clients = calloc((size_t)n, sizeof *clients);
    struct many all = {clients, 0, FANOUT_MESSAGES};
    int failed = 0;
    for (int i = 0; i < n && !failed; i++) {
        for (int s = 0; s < FANOUT_MESSAGES; s++) clients[i].expect_len[s] = FANOUT_SIZES[s];
        clients[i].strict = 1;
        if (client_connect(r, &clients[i], port, 0) != 0) {
            fprintf(stderr, "client %d: connect: %s\n", i, strerror(errno));
            failed = 1;
        }
        all.n = i + 1;
        /* Batches of 500: the listen backlog is 1024. */
        if ((i + 1) % 500 == 0 && !dispatch_until(r, all_open, &all, 30000)) failed = 1;
    }
    if (!failed && !dispatch_until(r, all_open, &all, 30000)) failed = 1;
    printf("clients open=%d\n", all.n);
    fflush(stdout);
    double start = now_ms();
    int complete = dispatch_until(r, all_received, &all, 60000);
    double took = now_ms() - start;
    /* Anything more would be a duplicate. */
    double settle = now_ms() + 200;
    while (now_ms() < settle) wsconn_reactor_dispatch(r, 20);
    long errors = 0, exact = 0;
    for (int i = 0; i < all.n; i++) {
        errors += clients[i].errors;
        if (clients[i].received == FANOUT_MESSAGES && clients[i].errors == 0) exact++;
        client_free(r, &clients[i]);
    }
    printf("clients n=%d exact=%ld errors=%ld complete=%d ms=%.0f\n", all.n, exact, errors, complete, took);
    fflush(stdout);
    free(clients);
    wsconn_reactor_release(r);
    return !failed && complete && errors == 0 && exact == n ? 0 : 1;
}

static int fanout(int n) {
    raise_nofile((rlim_t)n + 200);
    int pipefd[2];
    if (pipe(pipefd) != 0) return 1;
    pid_t child = fork();
    if (child == 0) {
        close(pipefd[1]);
        int port = 0;
        if (read(pipefd[0], &port, sizeof port) != sizeof port) _exit(2);
        _exit(fanout_clients(port, n));
    }
    close(pipefd[0]);
    wsconn_reactor_t *r = wsconn_reactor_create();
    struct server srv = {0};
    int port = server_start(&srv, r, "news");
    CHECK(port > 0);
    CHECK_EQ(write(pipefd[1], &port, sizeof port), sizeof port);
    close(pipefd[1]);
    double end = now_ms() + 90000;
    while (wsconn_topic_subscribers(r, "news") < (size_t)n && now_ms() < end) {
        wsconn_reactor_dispatch(r, 10);
        if (waitpid(child, NULL, WNOHANG) == child) {
            child = -1;
            break;
        }
    }
    CHECK_EQ(wsconn_topic_subscribers(r, "news"), n);
    CHECK_EQ(wsconn_topic_count(r), 1);
    CHECK_EQ(srv.errors, 0);
    char *msg = malloc(8192 + 1);
    double start = now_ms();
    for (long seq = 0; seq < FANOUT_MESSAGES; seq++) {
        size_t len = make_message(msg, 'A', seq, FANOUT_SIZES[seq]);
        CHECK_EQ(wsconn_publish(r, "news", WSCONN_MSG_TEXT, msg, len), n);
    }
    /* The three go out in the same turn. */
    wsconn_reactor_dispatch(r, 0);
    printf("published to %d in %.1f ms\n", n, now_ms() - start);
    free(msg);
    int status = -1;
    while (child > 0 && now_ms() < end) {
        wsconn_reactor_dispatch(r, 10);
        if (waitpid(child, &status, WNOHANG) == child) break;
    }
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* Every client gone: every subscription gone. */
    while (wsconn_topic_count(r) > 0 && now_ms() < end) wsconn_reactor_dispatch(r, 10);
    CHECK_EQ(wsconn_topic_subscribers(r, "news"), 0);
    CHECK_EQ(wsconn_topic_count(r), 0);
    wsconn_acceptor_release(srv.acceptor);
    wsconn_reactor_release(r);
    return test_summary();
}

/* ------------------------------------------------------------------ */
/* slow                                                                 */

#define SLOW_SIZE (16 * 1024)
#define MAX_OUTPUT (64 * 1024)

struct seen {
    struct client *clients;
    int n;
    long seq;
};

/* Clients 0..n-1 got message `seq`. */
static int got(void *arg) {
    struct seen *s = arg;
    for (int i = 0; i < s->n; i++)
        if (s->clients[i].last_seq[0] < s->seq) return 0;
    return 1;
}

static int got_close(void *arg) {
    struct client *c = arg;
    return c->close_code != -1;
}

/* Publishes to `fast` reading clients and one that does not read (the last),
 * until the slow one was left out `rounds` times. Returns the next seq. */
static long flood(wsconn_reactor_t *r, const char *topic, struct client *c, int fast, long seq, int rounds,
                  long *left_out) {
    char *msg = malloc(SLOW_SIZE + 1);
    struct seen s = {c, fast, 0};
    for (int i = 0; i < 2000 && *left_out < rounds; i++, seq++) {
        size_t len = make_message(msg, 'A', seq, SLOW_SIZE);
        int n = wsconn_publish(r, topic, WSCONN_MSG_TEXT, msg, len);
        if (n == fast) (*left_out)++;
        else CHECK_EQ(n, fast + 1);
        s.seq = seq;
        if (!dispatch_until(r, got, &s, 10000)) {
            CHECK(!"fast clients keep up");
            break;
        }
    }
    free(msg);
    return seq;
}

static int slow(void) {
    wsconn_reactor_t *r = wsconn_reactor_create();
    wsconn_config_t *cfg = wsconn_config_new();
    CHECK_EQ(wsconn_config_set_max_output(cfg, MAX_OUTPUT), WSCONN_OK);
    CHECK_EQ(wsconn_config_set_close_timeout(cfg, 20000), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_set_config(r, cfg), WSCONN_OK);
    wsconn_config_free(cfg);

    /* Skip: 3 readers and one that does not read. */
    struct server srv = {0};
    int port = server_start(&srv, r, "skip");
    struct client c[4] = {{0}};
    for (int i = 0; i < 4; i++) CHECK_EQ(client_connect(r, &c[i], port, i == 3 ? 4096 : 0), WSCONN_OK);
    struct many m = {c, 4, 0};
    CHECK(dispatch_until(r, all_open, &m, 10000));
    while (atomic_load(&srv.open) < 4) wsconn_reactor_dispatch(r, 10);
    CHECK_EQ(wsconn_reactor_watch(r, c[3].fd, 0, client_readable, &c[3]), WSCONN_OK); /* stops reading */
    long left_out = 0;
    long seq = flood(r, "skip", c, 3, 0, 20, &left_out);
    CHECK_EQ(left_out, 20);
    printf("skip: slow subscriber left out of %ld of %ld messages\n", left_out, seq);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(c[i].received, seq);
        CHECK_EQ(c[i].errors, 0);
    }
    /* It reads again: what was queued for it, then new messages reach it. */
    CHECK_EQ(wsconn_reactor_watch(r, c[3].fd, WSCONN_WATCH_READ, client_readable, &c[3]), WSCONN_OK);
    double settle = now_ms() + 500;
    while (now_ms() < settle) wsconn_reactor_dispatch(r, 10);
    long before = c[3].received;
    CHECK(before > 0 && before < seq);
    char msg[64];
    for (int i = 0; i < 3; i++, seq++) {
        size_t len = make_message(msg, 'A', seq, sizeof msg - 1);
        CHECK_EQ(wsconn_publish(r, "skip", WSCONN_MSG_TEXT, msg, len), 4);
        struct seen s = {c, 4, seq};
        CHECK(dispatch_until(r, got, &s, 5000));
    }
    CHECK_EQ(c[3].received, before + 3);
    CHECK_EQ(c[3].errors, 0); /* increasing, byte-exact: never twice */
    CHECK_EQ(c[3].close_code, -1);
    printf("skip: slow subscriber got %ld of %ld\n", c[3].received, seq);
    for (int i = 0; i < 4; i++) client_free(r, &c[i]);
    wsconn_acceptor_release(srv.acceptor);

    /* Close: 2 readers and one that does not read. */
    struct server srv2 = {0};
    port = server_start(&srv2, r, "close");
    CHECK_EQ(wsconn_topic_set_policy(r, "close", WSCONN_SLOW_CLOSE), WSCONN_OK);
    struct client d[3] = {{0}};
    for (int i = 0; i < 3; i++) CHECK_EQ(client_connect(r, &d[i], port, i == 2 ? 4096 : 0), WSCONN_OK);
    m = (struct many){d, 3, 0};
    CHECK(dispatch_until(r, all_open, &m, 10000));
    while (atomic_load(&srv2.open) < 3) wsconn_reactor_dispatch(r, 10);
    CHECK_EQ(wsconn_reactor_watch(r, d[2].fd, 0, client_readable, &d[2]), WSCONN_OK);
    left_out = 0;
    seq = flood(r, "close", d, 2, 0, 1, &left_out);
    CHECK_EQ(left_out, 1);
    /* Closed: no more deliveries are attempted; it reads its output, then 1008. */
    CHECK_EQ(wsconn_reactor_watch(r, d[2].fd, WSCONN_WATCH_READ, client_readable, &d[2]), WSCONN_OK);
    CHECK(dispatch_until(r, got_close, &d[2], 10000));
    CHECK_EQ(d[2].close_code, 1008);
    CHECK_EQ(d[2].errors, 0);
    close(d[2].fd); /* the server gets EOF and ends the connection */
    wsconn_reactor_unwatch(r, d[2].fd);
    d[2].fd = -1;
    double end = now_ms() + 10000;
    while (atomic_load(&srv2.closed) < 1 && now_ms() < end) wsconn_reactor_dispatch(r, 10);
    CHECK_EQ(atomic_load(&srv2.closed), 1);
    CHECK_EQ(wsconn_topic_subscribers(r, "close"), 2);
    printf("close: slow subscriber got %ld of %ld, then close %d\n", d[2].received, seq, d[2].close_code);
    for (int i = 0; i < 3; i++) client_free(r, &d[i]);
    wsconn_acceptor_release(srv2.acceptor);
    end = now_ms() + 10000;
    while (wsconn_topic_count(r) > 0 && now_ms() < end) wsconn_reactor_dispatch(r, 10);
    CHECK_EQ(wsconn_topic_count(r), 0);
    size_t buffered = 1;
    wsconn_reactor_memory(r, &buffered, NULL);
    CHECK_EQ(buffered, 0); /* every published byte charged was given back */
    wsconn_reactor_release(r);
    return test_summary();
}

/* ------------------------------------------------------------------ */
/* threads                                                              */

#define PER_SERVER 20
#define PUBLISHED 300

static atomic_int stopping;

static void *server_thread(void *arg) {
    struct server *s = arg;
    while (!atomic_load(&stopping)) wsconn_reactor_dispatch(s->reactor, 20);
    wsconn_acceptor_release(s->acceptor);
    wsconn_reactor_release(s->reactor);
    return NULL;
}

/* Runs on server A's thread: publishes there. */
static void publish_on_a(void *arg) {
    struct server *a = arg;
    char msg[100];
    for (long seq = 0; seq < PUBLISHED; seq++) {
        size_t len = make_message(msg, 'A', seq, 40 + (size_t)seq % 50);
        if (wsconn_publish(a->reactor, "all", WSCONN_MSG_TEXT, msg, len) != PER_SERVER) a->errors++;
    }
}

static int threads(void) {
    struct server a = {0}, b = {0};
    int port_a = server_start(&a, wsconn_reactor_create(), "all");
    int port_b = server_start(&b, wsconn_reactor_create(), "all");
    CHECK(port_a > 0 && port_b > 0);
    CHECK_EQ(wsconn_reactor_share_topics(b.reactor, a.reactor), WSCONN_OK);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, server_thread, &a);
    pthread_create(&tb, NULL, server_thread, &b);

    wsconn_reactor_t *r = wsconn_reactor_create();
    struct client c[2 * PER_SERVER] = {{0}};
    for (int i = 0; i < 2 * PER_SERVER; i++) {
        c[i].strict = 1;
        CHECK_EQ(client_connect(r, &c[i], i < PER_SERVER ? port_a : port_b, 0), WSCONN_OK);
    }
    struct many m = {c, 2 * PER_SERVER, 2 * PUBLISHED};
    CHECK(dispatch_until(r, all_open, &m, 10000));
    double end = now_ms() + 10000;
    while ((atomic_load(&a.open) < PER_SERVER || atomic_load(&b.open) < PER_SERVER) && now_ms() < end)
        wsconn_reactor_dispatch(r, 10);
    /* Two publishers at once: one on A's thread, one here. */
    CHECK_EQ(wsconn_reactor_defer(a.reactor, publish_on_a, &a), WSCONN_OK);
    char msg[100];
    for (long seq = 0; seq < PUBLISHED; seq++) {
        size_t len = make_message(msg, 'X', seq, 30 + (size_t)seq % 70);
        CHECK_EQ(wsconn_publish_async(seq % 2 ? a.reactor : b.reactor, "all", WSCONN_MSG_TEXT, msg, len),
                 WSCONN_OK);
        if (seq % 50 == 0) wsconn_reactor_dispatch(r, 0);
    }
    CHECK(dispatch_until(r, all_received, &m, 20000));
    double settle = now_ms() + 200;
    while (now_ms() < settle) wsconn_reactor_dispatch(r, 20);
    long exact = 0;
    for (int i = 0; i < 2 * PER_SERVER; i++) {
        if (c[i].received == 2 * PUBLISHED && c[i].errors == 0 && c[i].last_seq[0] == PUBLISHED - 1 &&
            c[i].last_seq[1] == PUBLISHED - 1)
            exact++;
        else
            fprintf(stderr, "client %d: %ld messages, %ld errors\n", i, c[i].received, c[i].errors);
        client_free(r, &c[i]);
    }
    CHECK_EQ(exact, 2 * PER_SERVER);
    /* Every server connection sees its client go before the reactors stop. */
    end = now_ms() + 10000;
    while ((atomic_load(&a.closed) < PER_SERVER || atomic_load(&b.closed) < PER_SERVER) && now_ms() < end)
        usleep(10000);
    CHECK_EQ(atomic_load(&a.closed) + atomic_load(&b.closed), 2 * PER_SERVER);
    atomic_store(&stopping, 1);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CHECK_EQ(a.errors, 0);
    CHECK_EQ(b.errors, 0);
    printf("threads: %d clients on 2 reactors got %d messages each\n", 2 * PER_SERVER, 2 * PUBLISHED);
    wsconn_reactor_release(r);
    return test_summary();
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "";
    if (!strcmp(mode, "fanout")) return fanout(argc > 2 ? atoi(argv[2]) : 10000);
    if (!strcmp(mode, "slow")) return slow();
    if (!strcmp(mode, "threads")) return threads();
    fprintf(stderr, "usage: pubsub_test fanout [N] | slow | threads\n");
    return 2;
}
