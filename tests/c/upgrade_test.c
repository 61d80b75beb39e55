/*
 * upgrade_test: who may connect, seen from C (run under ASan + UBSan by
 * tests/upgrade_c.rs; leaks are errors).
 *
 *   upgrade_test pending   reactor connections whose upgrade decision is
 *                          pending: the request read inside the callback
 *                          and afterwards through the same pointers; a
 *                          client that leaves (the close callbacks run, a
 *                          decision taken later, from a timer or inside the
 *                          close callback, returns WSCONN_ERR_CLOSED; or the
 *                          close callback releases the connection and its
 *                          timer); accept later with a subprotocol and a
 *                          header, the early frame echoed; reject later,
 *                          byte for byte; argument errors changing nothing;
 *                          decisions from another thread (wsconn_reactor_defer)
 *                          and from another connection's message callback;
 *                          the handshake timeout; wsconn_reactor_refuse_pending;
 *                          a connection released inside its upgrade callback
 *                          (no callback after) and while pending.
 *   upgrade_test session   the same decisions on a sans-IO server session
 *                          (also one freed inside its upgrade callback).
 *   upgrade_test tls CERT KEY CA ALICE_CERT ALICE_KEY BOB_CERT BOB_KEY
 *                          accepted TLS sockets taken in the accept callback
 *                          (wsconn_accepted_take) and started on a worker
 *                          reactor's thread (wsconn_set_accepted): wss://
 *                          clients echo, a ws:// client fails, a taken socket
 *                          freed unused closes; mutual TLS with an upgrade
 *                          callback deciding on the SNI name and the client's
 *                          certificate (alice by name: in; alice by IP, bob:
 *                          refused; no certificate: no TLS).
 *
 * Clients of the reactor cases are raw sockets (bytes checked exactly) or
 * wsconn clients on the same reactor. Prints "N passed, M failed".
 */
#include "wsconn.h"
#include "test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Runs the reactor until `cond` holds or `ms` pass. */
#define PUMP_UNTIL(r, cond, ms)                                                \
    do {                                                                       \
        double until_ = now_ms() + (ms);                                       \
        while (!(cond) && now_ms() < until_) wsconn_reactor_dispatch((r), 5);  \
    } while (0)

#define CHECK_STR(actual, expected)                                            \
    do {                                                                       \
        const char *check_s_ = (actual);                                       \
        if (check_s_ != NULL && strcmp(check_s_, (expected)) == 0) {           \
            test_passed++;                                                     \
        } else {                                                               \
            test_failed++;                                                     \
            fprintf(stderr, "FAIL %s:%d: %s == \"%s\", expected \"%s\"\n",     \
                    __FILE__, __LINE__, #actual,                               \
                    check_s_ ? check_s_ : "(null)", (expected));               \
        }                                                                      \
    } while (0)

/* ------------------------------------------------------------------ */
/* Raw clients: blocking connect, bytes read while the reactor runs.    */

static const char KEY_ACCEPT[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

static int raw_connect(int port, int *local_port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("connect");
        exit(2);
    }
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    if (local_port) *local_port = ntohs(a.sin_port);
    return fd;
}

/* An upgrade request for `path` offering two subprotocols, with two Cookie
 * lines, then `extra` bytes (early frames). */
static void raw_request(int fd, const char *path, const void *extra, size_t extra_len) {
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat, superchat\r\n"
                     "Cookie: a=1\r\nCookie: b=2\r\n\r\n",
                     path);
    if (write(fd, req, (size_t)n) != n || (extra_len && write(fd, extra, extra_len) != (ssize_t)extra_len)) {
        perror("write");
        exit(2);
    }
}

/* A masked text frame of `text` into out; returns its length. */
static size_t masked_text(uint8_t *out, const char *text) {
    size_t len = strlen(text);
    static const uint8_t mask[4] = {1, 2, 3, 4};
    out[0] = 0x81;
    out[1] = (uint8_t)(0x80 | len);
    memcpy(out + 2, mask, 4);
    for (size_t i = 0; i < len; i++) out[6 + i] = (uint8_t)text[i] ^ mask[i % 4];
    return 6 + len;
}

/* Reads what `fd` receives while `r` runs, until `want` bytes came (0: until
 * EOF) or `ms` passed; NUL-terminates. Returns the count; *eof tells EOF. */
static size_t raw_read(wsconn_reactor_t *r, int fd, char *buf, size_t cap, size_t want, int ms, int *eof) {
    size_t got = 0;
    *eof = 0;
    double until = now_ms() + ms;
    while (now_ms() < until && got < cap - 1 && (want == 0 || got < want)) {
        ssize_t n = recv(fd, buf + got, cap - 1 - got, MSG_DONTWAIT);
        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            *eof = 1;
            break;
        }
        wsconn_reactor_dispatch(r, 5);
    }
    buf[got] = 0;
    return got;
}

/* ------------------------------------------------------------------ */
/* pending: the reactor's server side.                                  */

enum later { LATER_NONE, LATER_ACCEPT, LATER_REJECT, LATER_AFTER_CLOSE, LATER_BYE };
static int bye_accept = 1; /* /later-bye: what the accept returned */

struct server_conn {
    wsconn_t *con;
    int fd;
    int upgrades, opened, closes, close_code, close_error;
    int release_in_close;   /* the echo_server pattern: free everything on close */
    enum later later;       /* what the timer decides */
    wsconn_timer_t *timer;
    int late_accept, late_reject, in_close_accept, timer_fired;
    /* Pointers taken inside the upgrade callback, read again while pending. */
    const char *method, *target, *cookie2;
    int peer_port;
    char peer[64];
};

#define MAX_SERVER_CONNS 32
static struct server_conn *server_conns[MAX_SERVER_CONNS];
static int server_conn_count;
static wsconn_reactor_t *pending_reactor;
static wsconn_config_t *short_config; /* a 300 ms handshake timeout */

static void server_conn_free(struct server_conn *c) {
    for (int i = 0; i < server_conn_count; i++)
        if (server_conns[i] == c) server_conns[i] = NULL;
    wsconn_timer_release(c->timer);
    wsconn_release(c->con);
    free(c);
}

static void on_decide(wsconn_timer_t *timer, void *arg) {
    struct server_conn *c = arg;
    (void)timer;
    c->timer_fired = 1;
    static const wsconn_header_t cookie[] = {{"Set-Cookie", "id=1"}};
    static const wsconn_header_t auth[] = {{"WWW-Authenticate", "Bearer"}, {"Content-Type", "text/plain"}};
    switch (c->later) {
    case LATER_ACCEPT:
        /* Argument errors first: nothing changes. */
        CHECK_EQ(wsconn_upgrade_accept(c->con, "nope", NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
        CHECK_EQ(wsconn_upgrade_accept(c->con, NULL, NULL, 1), WSCONN_ERR_NULL);
        CHECK_EQ(wsconn_upgrade_pending(c->con), 1);
        c->late_accept = wsconn_upgrade_accept(c->con, "superchat", cookie, 1);
        CHECK_EQ(wsconn_upgrade_accept(c->con, NULL, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
        break;
    case LATER_REJECT:
        CHECK_EQ(wsconn_upgrade_reject(c->con, 600, NULL, 0, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
        CHECK_EQ(wsconn_upgrade_reject(c->con, 401, auth, 2, NULL, 5), WSCONN_ERR_NULL);
        c->late_reject = wsconn_upgrade_reject(c->con, 401, auth, 2, "no token", 8);
        CHECK_EQ(wsconn_upgrade_accept(c->con, NULL, NULL, 0), WSCONN_ERR_CLOSED);
        break;
    case LATER_AFTER_CLOSE:
        c->late_accept = wsconn_upgrade_accept(c->con, NULL, cookie, 1);
        c->late_reject = wsconn_upgrade_reject(c->con, 403, NULL, 0, NULL, 0);
        break;
    case LATER_BYE:
        /* The early frame's message callback frees c (and this timer)
         * inside this accept: nothing of c is touched afterwards. */
        bye_accept = wsconn_upgrade_accept(c->con, NULL, NULL, 0);
        break;
    case LATER_NONE:
        break;
    }
}

/* /by-thread: the decision, run on the reactor's thread. */
static void decide_from_queue(void *arg) {
    struct server_conn *c = arg;
    c->late_accept = wsconn_upgrade_accept(c->con, NULL, NULL, 0);
}

static void *lookup_thread(void *arg) {
    usleep(50 * 1000);
    CHECK_EQ(wsconn_reactor_defer(pending_reactor, decide_from_queue, arg), WSCONN_OK);
    return NULL;
}

/* /drain: how many wsconn_reactor_refuse_pending refused. */
static int drained = -1;

/* /by-other: decided in another connection's message callback. */
static struct server_conn *waiting_for_other;

static int on_upgrade(wsconn_t *con, void *arg) {
    struct server_conn *c = arg;
    c->upgrades++;
    c->method = wsconn_request_method(con);
    c->target = wsconn_request_target(con);
    c->cookie2 = wsconn_request_header(con, "COOKIE", 1);
    CHECK_STR(c->method, "GET");
    CHECK_STR(c->cookie2, "b=2");
    CHECK(wsconn_request_header(con, "cookie", 2) == NULL);
    CHECK_STR(wsconn_request_header(con, "host", 0), "127.0.0.1");
    int count = wsconn_request_header_count(con);
    CHECK_EQ(count, 8);
    const char *name = NULL, *value = NULL;
    CHECK_EQ(wsconn_request_header_at(con, 0, &name, &value), WSCONN_OK);
    CHECK_STR(name, "Host");
    CHECK_EQ(wsconn_request_header_at(con, (size_t)count, &name, &value), WSCONN_ERR_INVALID_ARGUMENT);
    char proto[16];
    CHECK_EQ(wsconn_request_subprotocol(con, 1, proto, sizeof proto), 9);
    CHECK_STR(proto, "superchat");
    CHECK_EQ(wsconn_request_subprotocol(con, 2, proto, sizeof proto), WSCONN_ERR_INVALID_ARGUMENT);
    c->peer_port = wsconn_peer_address(con, c->peer, sizeof c->peer);
    CHECK_EQ(wsconn_peer_address(con, c->peer, 4), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK(wsconn_tls_server_name(con) == NULL);
    size_t der_len = 0;
    CHECK(wsconn_tls_peer_certificate(con, 0, &der_len) == NULL);

    const char *target = c->target ? c->target : "";
    if (strcmp(target, "/inside") == 0) {
        /* Decided here: the return value is then ignored. */
        CHECK_EQ(wsconn_upgrade_accept(con, "", NULL, 0), WSCONN_OK);
        CHECK_EQ(wsconn_upgrade_pending(con), 0);
        return WSCONN_UPGRADE_REJECT;
    }
    if (strcmp(target, "/refuse") == 0) return 7; /* not a wsconn_upgrade: 403 */
    if (strcmp(target, "/release-inside") == 0) {
        server_conn_free(c); /* allowed in its callbacks; the answer is moot */
        return WSCONN_UPGRADE_ACCEPT;
    }
    if (strcmp(target, "/by-thread") == 0) {
        /* A look-up on another thread, whose answer comes back through the
         * reactor's queue (the one thread-safe entry). */
        pthread_t t;
        CHECK_EQ(pthread_create(&t, NULL, lookup_thread, c), 0);
        pthread_detach(t);
        return WSCONN_UPGRADE_PENDING;
    }
    if (strcmp(target, "/drain") == 0) {
        /* Refusing every pending one, itself included, from its callback. */
        drained = wsconn_reactor_refuse_pending(pending_reactor, 503);
        CHECK_EQ(wsconn_upgrade_pending(con), 0);
        return WSCONN_UPGRADE_PENDING; /* ignored: decided inside */
    }
    if (strcmp(target, "/by-other") == 0) {
        waiting_for_other = c;
        return WSCONN_UPGRADE_PENDING;
    }
    if (strcmp(target, "/pending") == 0) return WSCONN_UPGRADE_PENDING;
    if (strncmp(target, "/later", 6) == 0) {
        c->timer = wsconn_timer_create(pending_reactor, on_decide, c);
        wsconn_timer_start(c->timer, 150, 0);
    }
    if (strcmp(target, "/later-accept") == 0) c->later = LATER_ACCEPT;
    if (strcmp(target, "/later-bye") == 0) c->later = LATER_BYE;
    if (strcmp(target, "/later-reject") == 0) c->later = LATER_REJECT;
    if (strcmp(target, "/later-leave") == 0) c->later = LATER_AFTER_CLOSE;
    if (strcmp(target, "/later-release") == 0) c->release_in_close = 1;
    return WSCONN_UPGRADE_PENDING;
}

static void on_server_build(int fd, void *arg) {
    struct server_conn *c = arg;
    (void)fd;
    c->opened++;
}

static void on_server_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len) {
    struct server_conn *c = arg;
    if (len == 3 && memcmp(data, "bye", 3) == 0) {
        server_conn_free(c); /* released in its message callback */
        return;
    }
    if (waiting_for_other != NULL && len == 11 && memcmp(data, "let them in", 11) == 0) {
        waiting_for_other->late_accept = wsconn_upgrade_accept(waiting_for_other->con, NULL, NULL, 0);
        waiting_for_other = NULL;
    }
    CHECK_EQ(type == WSCONN_MSG_TEXT ? wsconn_send_text(con, (const char *)data, len)
                                     : wsconn_send_binary(con, data, len),
             WSCONN_OK);
}

static void on_server_close(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    struct server_conn *c = arg;
    (void)reason;
    (void)reason_len;
    c->closes++;
    c->close_code = code;
    c->close_error = wsconn_close_error(con);
    CHECK_EQ(wsconn_upgrade_pending(con), 0);
    CHECK(wsconn_request_method(con) == NULL);
    if (c->later == LATER_AFTER_CLOSE)
        c->in_close_accept = wsconn_upgrade_accept(con, NULL, NULL, 0);
    if (c->release_in_close) server_conn_free(c);
}

static int on_server_accept(int fd, void *arg) {
    struct server_conn *c = calloc(1, sizeof *c);
    c->fd = fd;
    c->con = wsconn_create(pending_reactor);
    if (arg != NULL) wsconn_set_config(c->con, arg);
    wsconn_set_upgrade_func(c->con, on_upgrade, c);
    wsconn_set_build_func(c->con, on_server_build, c);
    wsconn_set_message_func(c->con, on_server_message, c);
    wsconn_set_close_ex_func(c->con, on_server_close, c);
    wsconn_set_fd(c->con, fd);
    CHECK(server_conn_count < MAX_SERVER_CONNS);
    server_conns[server_conn_count++] = c;
    CHECK_EQ(wsconn_start(c->con), WSCONN_OK);
    return 0;
}

/* The next server connection (in the order of the clients) once its
 * upgrade callback ran. */
static int upgraded_next;
static struct server_conn *upgraded(void) {
    int next = upgraded_next;
    PUMP_UNTIL(pending_reactor, server_conn_count > next && server_conns[next] != NULL &&
                                    server_conns[next]->upgrades == 1, 5000);
    struct server_conn *c = server_conn_count > next ? server_conns[next] : NULL;
    CHECK(c != NULL && c->upgrades == 1);
    upgraded_next++;
    return c;
}

/* The next server connection, which frees itself in its upgrade callback. */
static void upgraded_freed(void) {
    PUMP_UNTIL(pending_reactor, server_conn_count > upgraded_next && server_conns[upgraded_next] == NULL, 5000);
    CHECK(server_conn_count > upgraded_next && server_conns[upgraded_next] == NULL);
    upgraded_next++;
}

static int run_pending(void) {
    pending_reactor = wsconn_reactor_create();
    wsconn_reactor_t *r = pending_reactor;
    /* The default subprotocol ("chat") is what NULL accepts with. */
    wsconn_config_t *config = wsconn_config_new();
    CHECK_EQ(wsconn_config_add_subprotocol(config, "chat"), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_set_config(r, config), WSCONN_OK);
    wsconn_config_free(config);
    short_config = wsconn_config_new();
    CHECK_EQ(wsconn_config_set_handshake_timeout(short_config, 300), WSCONN_OK);
    wsconn_acceptor_t *acc = wsconn_acceptor_create(r), *short_acc = wsconn_acceptor_create(r);
    wsconn_acceptor_set_accept_func(acc, on_server_accept, NULL);
    wsconn_acceptor_set_accept_func(short_acc, on_server_accept, short_config);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_start(short_acc, "127.0.0.1", 0), WSCONN_OK);
    int port = wsconn_acceptor_port(acc), short_port = wsconn_acceptor_port(short_acc);
    char buf[4096];
    int eof, local;

    /* 1. The client leaves while pending; the request read through the
     * callback's pointers meanwhile; the decision comes later from a timer
     * (and one inside the close callback): WSCONN_ERR_CLOSED. */
    int fd = raw_connect(port, &local);
    raw_request(fd, "/later-leave", NULL, 0);
    struct server_conn *c = upgraded();
    CHECK_EQ(c->peer_port, local);
    CHECK_STR(c->peer, "127.0.0.1");
    wsconn_reactor_dispatch(r, 5);
    CHECK_EQ(wsconn_upgrade_pending(c->con), 1);
    CHECK_STR(c->method, "GET"); /* valid while pending */
    CHECK_STR(c->target, "/later-leave");
    CHECK_STR(c->cookie2, "b=2");
    CHECK_STR(wsconn_request_header(c->con, "Cookie", 0), "a=1");
    CHECK_EQ(wsconn_request_header_count(c->con), 8);
    close(fd);
    PUMP_UNTIL(r, c->closes == 1 && c->timer_fired, 5000);
    CHECK_EQ(c->closes, 1);
    CHECK_EQ(c->close_code, 1006);
    CHECK_EQ(c->close_error, WSCONN_ERR_EOF);
    CHECK_EQ(c->in_close_accept, WSCONN_ERR_CLOSED);
    CHECK_EQ(c->late_accept, WSCONN_ERR_CLOSED);
    CHECK_EQ(c->late_reject, WSCONN_ERR_CLOSED);
    CHECK_EQ(wsconn_upgrade_accept(c->con, NULL, NULL, 0), WSCONN_ERR_CLOSED);
    CHECK(wsconn_request_target(c->con) == NULL);
    CHECK_EQ(wsconn_request_header_count(c->con), WSCONN_ERR_STATE);
    server_conn_free(c);

    /* 2. The client leaves; the close callback frees the connection and the
     * timer that would have decided (echo_server's --auth-delay). */
    fd = raw_connect(port, NULL);
    raw_request(fd, "/later-release", NULL, 0);
    c = upgraded();
    close(fd);
    PUMP_UNTIL(r, server_conns[server_conn_count - 1] == NULL, 5000);
    CHECK(server_conns[server_conn_count - 1] == NULL); /* freed in its close callback */
    for (int i = 0; i < 10; i++) wsconn_reactor_dispatch(r, 20); /* past the timer's time */

    /* 3. Accepted later with a subprotocol and a header line; the frame the
     * client sent early is echoed after the 101. */
    uint8_t early[64];
    size_t early_len = masked_text(early, "early");
    fd = raw_connect(port, NULL);
    raw_request(fd, "/later-accept", early, early_len);
    c = upgraded();
    const char *expect_accept =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: superchat\r\n"
        "Set-Cookie: id=1\r\n\r\n\x81\x05" "early";
    size_t got = raw_read(r, fd, buf, sizeof buf, strlen(expect_accept), 5000, &eof);
    CHECK_EQ(got, strlen(expect_accept));
    CHECK_STR(buf, expect_accept);
    CHECK_EQ(c->late_accept, WSCONN_OK);
    CHECK_EQ(c->opened, 1);
    CHECK_STR(wsconn_subprotocol(c->con), "superchat");
    close(fd);
    PUMP_UNTIL(r, c->closes == 1, 5000);
    server_conn_free(c);

    /* 4. Rejected later: exactly these bytes, then the close. */
    fd = raw_connect(port, NULL);
    raw_request(fd, "/later-reject", NULL, 0);
    c = upgraded();
    got = raw_read(r, fd, buf, sizeof buf, 0, 5000, &eof);
    CHECK_STR(buf, "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\nContent-Type: text/plain\r\n"
                   "Content-Length: 8\r\nConnection: close\r\n\r\nno token");
    CHECK(eof);
    PUMP_UNTIL(r, c->closes == 1, 5000);
    CHECK_EQ(c->late_reject, WSCONN_OK);
    CHECK_EQ(c->close_error, WSCONN_ERR_REFUSED);
    CHECK_EQ(c->opened, 0);
    close(fd);
    server_conn_free(c);

    /* 5. Decided inside the callback (no subprotocol: ""), and refused by a
     * return value that is no wsconn_upgrade. */
    fd = raw_connect(port, NULL);
    raw_request(fd, "/inside", NULL, 0);
    c = upgraded();
    got = raw_read(r, fd, buf, sizeof buf, 129, 5000, &eof);
    CHECK(strstr(buf, "HTTP/1.1 101 ") == buf);
    CHECK(strstr(buf, KEY_ACCEPT) != NULL);
    CHECK(strstr(buf, "Sec-WebSocket-Protocol") == NULL);
    close(fd);
    PUMP_UNTIL(r, c->closes == 1, 5000);
    server_conn_free(c);
    fd = raw_connect(port, NULL);
    raw_request(fd, "/refuse", NULL, 0);
    c = upgraded();
    raw_read(r, fd, buf, sizeof buf, 0, 5000, &eof);
    CHECK(strstr(buf, "HTTP/1.1 403 Forbidden\r\n") == buf);
    PUMP_UNTIL(r, c->closes == 1, 5000);
    CHECK_EQ(c->close_error, WSCONN_ERR_REFUSED);
    close(fd);
    server_conn_free(c);

    /* 6. Never decided: the handshake timeout ends it (300 ms here). */
    fd = raw_connect(short_port, NULL);
    raw_request(fd, "/pending", NULL, 0);
    c = upgraded();
    double start = now_ms();
    raw_read(r, fd, buf, sizeof buf, 0, 5000, &eof);
    CHECK(eof && buf[0] == 0);
    PUMP_UNTIL(r, c->closes == 1, 5000);
    CHECK_EQ(c->close_error, WSCONN_ERR_TIMEOUT);
    CHECK(now_ms() - start < 3000);
    CHECK_EQ(wsconn_upgrade_reject(c->con, 503, NULL, 0, NULL, 0), WSCONN_ERR_CLOSED);
    close(fd);
    server_conn_free(c);

    /* 7. Refused all at once (a server draining before it stops). */
    int fds[2];
    struct server_conn *cs[2];
    for (int i = 0; i < 2; i++) {
        fds[i] = raw_connect(port, NULL);
        raw_request(fds[i], "/pending", NULL, 0);
        cs[i] = upgraded();
    }
    CHECK_EQ(wsconn_reactor_refuse_pending(r, 200), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_reactor_refuse_pending(r, 503), 2);
    CHECK_EQ(wsconn_reactor_refuse_pending(r, 503), 0);
    for (int i = 0; i < 2; i++) {
        raw_read(r, fds[i], buf, sizeof buf, 0, 5000, &eof);
        CHECK_STR(buf, "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        close(fds[i]);
        PUMP_UNTIL(r, cs[i]->closes == 1, 5000);
        CHECK_EQ(cs[i]->close_error, WSCONN_ERR_REFUSED);
        server_conn_free(cs[i]);
    }
    /* The same from inside an upgrade callback, its own request included. */
    fds[0] = raw_connect(port, NULL);
    raw_request(fds[0], "/pending", NULL, 0);
    cs[0] = upgraded();
    fds[1] = raw_connect(port, NULL);
    raw_request(fds[1], "/drain", NULL, 0);
    cs[1] = upgraded();
    CHECK_EQ(drained, 2);
    for (int i = 0; i < 2; i++) {
        raw_read(r, fds[i], buf, sizeof buf, 0, 5000, &eof);
        CHECK(strncmp(buf, "HTTP/1.1 503 ", 13) == 0);
        close(fds[i]);
        PUMP_UNTIL(r, cs[i]->closes == 1, 5000);
        server_conn_free(cs[i]);
    }

    /* 8. Decided from another thread through wsconn_reactor_defer, and from
     * another connection's message callback; then both echo. */
    static const char *RESPONSE_101 =
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n";
    fd = raw_connect(port, NULL);
    raw_request(fd, "/by-thread", NULL, 0);
    c = upgraded();
    got = raw_read(r, fd, buf, sizeof buf, strlen(RESPONSE_101), 5000, &eof);
    CHECK_STR(buf, RESPONSE_101);
    CHECK_EQ(c->late_accept, WSCONN_OK);
    int waiting = raw_connect(port, NULL);
    raw_request(waiting, "/by-other", early, early_len);
    struct server_conn *other = upgraded();
    uint8_t frame[64];
    CHECK_EQ(write(fd, frame, masked_text(frame, "let them in")), 17);
    got = raw_read(r, waiting, buf, sizeof buf, strlen(RESPONSE_101) + 7, 5000, &eof);
    CHECK_EQ(got, strlen(RESPONSE_101) + 7);
    CHECK(memcmp(buf + strlen(RESPONSE_101), "\x81\x05" "early", 7) == 0);
    CHECK_EQ(other->late_accept, WSCONN_OK);
    CHECK(waiting_for_other == NULL);
    close(fd);
    close(waiting);
    PUMP_UNTIL(r, c->closes == 1 && other->closes == 1, 5000);
    server_conn_free(c);
    server_conn_free(other);

    /* 9. Accepted later; the early frame's callback releases it inside
     * that accept: the socket closes at once, what was queued (the 101)
     * dropped with it, as a release always does. */
    size_t bye_len = masked_text(frame, "bye");
    fd = raw_connect(port, NULL);
    raw_request(fd, "/later-bye", frame, bye_len);
    upgraded();
    got = raw_read(r, fd, buf, sizeof buf, 0, 5000, &eof);
    CHECK(eof);
    CHECK_STR(buf, "");
    CHECK_EQ(bye_accept, WSCONN_OK);
    close(fd);

    /* 10. Released inside its own upgrade callback: closed, no answer. */
    fd = raw_connect(port, NULL);
    raw_request(fd, "/release-inside", NULL, 0);
    upgraded_freed();
    raw_read(r, fd, buf, sizeof buf, 0, 5000, &eof);
    CHECK(eof);
    CHECK_STR(buf, "");
    close(fd);

    /* 11. Released while pending: the socket closes, nothing leaks. */
    fd = raw_connect(port, NULL);
    raw_request(fd, "/pending", NULL, 0);
    c = upgraded();
    server_conn_free(c);
    raw_read(r, fd, buf, sizeof buf, 0, 5000, &eof);
    CHECK(eof && buf[0] == 0);
    close(fd);

    CHECK_EQ(wsconn_acceptor_release(acc), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_release(short_acc), WSCONN_OK);
    wsconn_config_free(short_config);
    CHECK_EQ(wsconn_reactor_release(r), WSCONN_OK);
    return test_summary();
}

/* ------------------------------------------------------------------ */
/* session: the sans-IO server session decides too.                     */

struct session_log {
    int upgrades, opens, messages, errors, decide_inside, free_inside;
    int answer; /* what the callback returns */
    char open_protocol[32];
    char last_message[64];
};

static int on_session_upgrade(wsconn_session_t *s, void *arg) {
    struct session_log *log = arg;
    log->upgrades++;
    CHECK_STR(wsconn_session_request_method(s), "GET");
    CHECK_STR(wsconn_session_request_target(s), "/s?x=1");
    CHECK_STR(wsconn_session_request_header(s, "cookie", 1), "b=2");
    CHECK_EQ(wsconn_session_request_header_count(s), 8);
    const char *name, *value;
    CHECK_EQ(wsconn_session_request_header_at(s, 7, &name, &value), WSCONN_OK);
    CHECK_STR(name, "Cookie");
    CHECK_STR(value, "b=2");
    char proto[4];
    CHECK_EQ(wsconn_session_request_subprotocol(s, 1, proto, sizeof proto), 9); /* truncated */
    CHECK_STR(proto, "sup");
    CHECK_EQ(wsconn_session_want_write(s), 0);
    if (log->free_inside) {
        wsconn_session_free(s); /* allowed in its callbacks */
        return WSCONN_UPGRADE_ACCEPT;
    }
    if (log->decide_inside) {
        static const wsconn_header_t h[] = {{"WWW-Authenticate", "Bearer realm=\"x\""}};
        CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, (const wsconn_header_t[]){{"X", "a\rb"}}, 1),
                 WSCONN_ERR_INVALID_ARGUMENT);
        CHECK_EQ(wsconn_session_upgrade_reject(s, 401, h, 1, "who?", 4), WSCONN_OK);
    }
    return log->answer;
}

static void on_session_open(wsconn_session_t *s, void *arg, const char *path, const char *protocol) {
    struct session_log *log = arg;
    (void)s;
    (void)path;
    log->opens++;
    snprintf(log->open_protocol, sizeof log->open_protocol, "%s", protocol ? protocol : "(none)");
}

static void on_session_message(wsconn_session_t *s, void *arg, int type, const uint8_t *data, size_t len) {
    struct session_log *log = arg;
    log->messages++;
    snprintf(log->last_message, sizeof log->last_message, "%.*s", (int)len, (const char *)data);
    CHECK_EQ(wsconn_session_send(s, type, data, len), WSCONN_OK);
}

static void on_session_error(wsconn_session_t *s, void *arg, int error) {
    struct session_log *log = arg;
    (void)s;
    (void)error;
    log->errors++;
}

static const wsconn_session_callbacks_t SESSION_CALLBACKS = {
    .on_open = on_session_open, .on_message = on_session_message, .on_error = on_session_error};

static char session_request[512];

/* A deciding server session fed the request and `extra` bytes. */
static wsconn_session_t *deciding_session(struct session_log *log, int answer, const uint8_t *extra, size_t len,
                                          int *feed_rc) {
    memset(log, 0, sizeof *log);
    log->answer = answer;
    wsconn_session_t *s = wsconn_session_server_new(NULL, &SESSION_CALLBACKS, log);
    wsconn_session_set_upgrade_func(s, on_session_upgrade, log);
    size_t n = strlen(session_request);
    uint8_t *input = malloc(n + len);
    memcpy(input, session_request, n);
    if (len) memcpy(input + n, extra, len);
    *feed_rc = wsconn_session_feed(s, input, n + len);
    free(input); /* nothing may point into it now */
    return s;
}

/* The session's output as a string (consumed). */
static const char *take_output(wsconn_session_t *s, char *buf, size_t cap) {
    const uint8_t *out = NULL;
    size_t n = wsconn_session_output(s, &out);
    if (n >= cap) n = cap - 1;
    memcpy(buf, out, n);
    buf[n] = 0;
    wsconn_session_consume(s, n);
    return buf;
}

static int run_session(void) {
    snprintf(session_request, sizeof session_request,
             "GET /s?x=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
             "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
             "Sec-WebSocket-Protocol: chat, superchat\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n");
    struct session_log log;
    char buf[1024];
    uint8_t early[64];
    size_t early_len = masked_text(early, "early");
    int rc;

    /* Pending: the request stays readable after the feed; early frames wait;
     * a bad decision changes nothing; the accept opens it and delivers the
     * early frame inside the call. */
    wsconn_session_t *s = deciding_session(&log, WSCONN_UPGRADE_PENDING, early, early_len, &rc);
    CHECK_EQ(rc, WSCONN_OK);
    CHECK_EQ(log.upgrades, 1);
    CHECK_EQ(wsconn_session_state(s), WSCONN_STATE_CONNECTING);
    CHECK_EQ(wsconn_session_want_write(s), 0);
    CHECK_EQ(wsconn_session_want_read(s), 1);
    CHECK_STR(wsconn_session_request_target(s), "/s?x=1");
    const char *cookie = wsconn_session_request_header(s, "Cookie", 0);
    CHECK_STR(cookie, "a=1");
    CHECK_EQ(wsconn_session_send(s, WSCONN_MSG_TEXT, (const uint8_t *)"x", 1), WSCONN_ERR_NOT_OPEN);
    static const wsconn_header_t split[] = {{"Set-Cookie", "a=1\r\nX-Injected: 1"}};
    static const wsconn_header_t bad_name[] = {{"Set Cookie", "a=1"}};
    static const wsconn_header_t reserved[] = {{"Sec-WebSocket-Accept", "x"}};
    static const wsconn_header_t nul_value[] = {{"X-Nul", NULL}};
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, split, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, bad_name, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, reserved, 1), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, nul_value, 1), WSCONN_ERR_NULL);
    CHECK_EQ(wsconn_session_upgrade_reject(s, 399, NULL, 0, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_upgrade_reject(s, 400, split, 1, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_upgrade_accept(s, "nope", NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_EQ(wsconn_session_want_write(s), 0);
    CHECK_STR(cookie, "a=1"); /* still pending: still valid */
    static const wsconn_header_t cookie_line[] = {{"Set-Cookie", "id=7; HttpOnly"}};
    CHECK_EQ(wsconn_session_upgrade_accept(s, "chat", cookie_line, 1), WSCONN_OK);
    CHECK_EQ(log.opens, 1);
    CHECK_STR(log.open_protocol, "chat");
    CHECK_EQ(log.messages, 1);
    CHECK_STR(log.last_message, "early");
    CHECK_EQ(wsconn_session_state(s), WSCONN_STATE_OPEN);
    CHECK(wsconn_session_request_method(s) == NULL);
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK_STR(take_output(s, buf, sizeof buf),
              "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n"
              "Set-Cookie: id=7; HttpOnly\r\n\r\n\x81\x05" "early");
    wsconn_session_free(s);

    /* Rejected inside the callback (its return value ignored). */
    memset(&log, 0, sizeof log);
    s = wsconn_session_server_new(NULL, &SESSION_CALLBACKS, &log);
    log.decide_inside = 1;
    log.answer = WSCONN_UPGRADE_ACCEPT;
    wsconn_session_set_upgrade_func(s, on_session_upgrade, &log);
    size_t n = strlen(session_request);
    uint8_t *input = malloc(n);
    memcpy(input, session_request, n);
    CHECK_EQ(wsconn_session_feed(s, input, n), WSCONN_OK);
    free(input);
    CHECK_EQ(log.opens, 0);
    CHECK_EQ(wsconn_session_state(s), WSCONN_STATE_CLOSED);
    CHECK_STR(take_output(s, buf, sizeof buf),
              "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm=\"x\"\r\nContent-Length: 4\r\n"
              "Connection: close\r\n\r\nwho?");
    CHECK_EQ(wsconn_session_want_read(s), 0);
    CHECK_EQ(wsconn_session_want_write(s), 0);
    wsconn_session_free(s);

    /* The callback's REJECT: 403. */
    s = deciding_session(&log, WSCONN_UPGRADE_REJECT, NULL, 0, &rc);
    CHECK(strncmp(take_output(s, buf, sizeof buf), "HTTP/1.1 403 Forbidden\r\n", 24) == 0);
    wsconn_session_free(s);

    /* Rejected later. */
    s = deciding_session(&log, WSCONN_UPGRADE_PENDING, NULL, 0, &rc);
    CHECK_EQ(wsconn_session_upgrade_reject(s, 503, NULL, 0, NULL, 0), WSCONN_OK);
    CHECK_STR(take_output(s, buf, sizeof buf),
              "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, NULL, 0), WSCONN_ERR_CLOSED);
    wsconn_session_free(s);

    /* The client leaves while pending: a later decision says so. */
    s = deciding_session(&log, WSCONN_UPGRADE_PENDING, NULL, 0, &rc);
    CHECK_EQ(wsconn_session_feed_eof(s), WSCONN_ERR_EOF);
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, NULL, 0), WSCONN_ERR_CLOSED);
    CHECK_EQ(wsconn_session_upgrade_reject(s, 403, NULL, 0, NULL, 0), WSCONN_ERR_CLOSED);
    CHECK(wsconn_session_request_target(s) == NULL);
    CHECK_EQ(wsconn_session_want_write(s), 0);
    wsconn_session_free(s);

    /* Early bytes fill the handshake limit (8 KiB): want_read turns 0, one
     * byte more fails the handshake with 431. */
    static uint8_t filler[8192];
    s = deciding_session(&log, WSCONN_UPGRADE_PENDING, filler, sizeof filler, &rc);
    CHECK_EQ(rc, WSCONN_OK);
    CHECK_EQ(wsconn_session_want_read(s), 0);
    uint8_t one = 0;
    CHECK_EQ(wsconn_session_feed(s, &one, 1), WSCONN_ERR_HANDSHAKE_TOO_LARGE);
    CHECK(strncmp(take_output(s, buf, sizeof buf), "HTTP/1.1 431 ", 13) == 0);
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, NULL, 0), WSCONN_ERR_CLOSED);
    wsconn_session_free(s);

    /* Freed while pending, with early bytes held: nothing leaks. */
    s = deciding_session(&log, WSCONN_UPGRADE_PENDING, early, early_len, &rc);
    wsconn_session_free(s);

    /* Freed inside its upgrade callback: the feed returns, nothing is
     * touched afterwards, nothing leaks. */
    memset(&log, 0, sizeof log);
    log.free_inside = 1;
    s = wsconn_session_server_new(NULL, &SESSION_CALLBACKS, &log);
    wsconn_session_set_upgrade_func(s, on_session_upgrade, &log);
    n = strlen(session_request);
    input = malloc(n + early_len);
    memcpy(input, session_request, n);
    memcpy(input + n, early, early_len);
    rc = wsconn_session_feed(s, input, n + early_len);
    free(input);
    CHECK_EQ(log.upgrades, 1);
    CHECK_EQ(log.opens, 0);
    CHECK_EQ(log.messages, 0);

    /* Without an upgrade function: no decision to take. */
    s = wsconn_session_server_new(NULL, &SESSION_CALLBACKS, &log);
    CHECK_EQ(wsconn_session_upgrade_accept(s, NULL, NULL, 0), WSCONN_ERR_INVALID_ARGUMENT);
    CHECK(wsconn_session_request_method(s) == NULL);
    wsconn_session_free(s);
    return test_summary();
}

/* ------------------------------------------------------------------ */
/* tls: the hand-off to a worker reactor, and mutual TLS.               */

/* The worker's reactor and the sockets handed to it. */
static wsconn_reactor_t *worker_reactor;
static pthread_mutex_t handoff_lock = PTHREAD_MUTEX_INITIALIZER;
static wsconn_accepted_t *handoff[16];
static int handoff_count;
static atomic_int worker_ready, worker_stop, worker_served, worker_closed;
static atomic_int worker_accepted_fd_ok;
static int free_next_taken; /* main thread: free the next taken socket unused */

static void worker_on_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len) {
    (void)arg;
    (void)type;
    wsconn_send_text(con, (const char *)data, len);
}

static void worker_on_close(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    (void)arg;
    (void)code;
    (void)reason;
    (void)reason_len;
    atomic_fetch_add(&worker_closed, 1);
    wsconn_release(con);
}

static void worker_on_build(int fd, void *arg) {
    (void)fd;
    (void)arg;
    atomic_fetch_add(&worker_served, 1);
}

/* On the worker's thread: start connections on what was handed over. */
static void worker_take(void *arg) {
    (void)arg;
    pthread_mutex_lock(&handoff_lock);
    for (int i = 0; i < handoff_count; i++) {
        wsconn_t *con = wsconn_create(worker_reactor);
        wsconn_set_message_func(con, worker_on_message, NULL);
        wsconn_set_build_func(con, worker_on_build, NULL);
        wsconn_set_close_ex_func(con, worker_on_close, NULL);
        if (wsconn_accepted_fd(handoff[i]) >= 0) atomic_fetch_add(&worker_accepted_fd_ok, 1);
        int rc = wsconn_set_accepted(con, handoff[i]);
        if (rc == WSCONN_OK) rc = wsconn_start(con);
        if (rc != WSCONN_OK) {
            fprintf(stderr, "worker: %s\n", wsconn_strerror(rc));
            wsconn_release(con);
        }
    }
    handoff_count = 0;
    pthread_mutex_unlock(&handoff_lock);
}

static void *worker_main(void *arg) {
    (void)arg;
    worker_reactor = wsconn_reactor_create();
    atomic_store(&worker_ready, 1);
    while (!atomic_load(&worker_stop)) wsconn_reactor_dispatch(worker_reactor, 20);
    return NULL;
}

/* On the main thread's acceptor: take the socket, hand it to the worker. */
static int on_handoff_accept(int fd, void *arg) {
    (void)arg;
    wsconn_accepted_t *taken = wsconn_accepted_take(fd);
    CHECK(taken != NULL);
    CHECK(wsconn_accepted_take(fd) == NULL); /* taken once */
    CHECK(wsconn_accepted_take(fd + 1000) == NULL);
    if (free_next_taken) {
        free_next_taken = 0;
        wsconn_accepted_free(taken); /* closes the socket */
        return 0;
    }
    pthread_mutex_lock(&handoff_lock);
    handoff[handoff_count++] = taken;
    pthread_mutex_unlock(&handoff_lock);
    CHECK_EQ(wsconn_reactor_defer(worker_reactor, worker_take, NULL), WSCONN_OK);
    return -1; /* ignored: the socket was taken */
}

/* A wss:// (or ws://) client on the main reactor that sends one message. */
struct client {
    wsconn_t *con;
    int built, echoed, closes, close_code, close_error;
};

static void client_on_build(int fd, void *arg) {
    struct client *c = arg;
    (void)fd;
    c->built = 1;
    wsconn_send_text(c->con, "hello", 5);
}

static void client_on_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len) {
    struct client *c = arg;
    (void)type;
    if (len == 5 && memcmp(data, "hello", 5) == 0) c->echoed = 1;
    wsconn_close(con, 1000, "done");
}

static void client_on_close(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    struct client *c = arg;
    (void)reason;
    (void)reason_len;
    c->closes++;
    c->close_code = code;
    c->close_error = wsconn_close_error(con);
}

static void client_start(struct client *c, wsconn_reactor_t *r, const char *url, const char *ca, const char *cert,
                         const char *key) {
    memset(c, 0, sizeof *c);
    wsconn_config_t *config = wsconn_config_new();
    if (ca) CHECK_EQ(wsconn_config_set_tls_ca_file(config, ca), WSCONN_OK);
    if (cert) CHECK_EQ(wsconn_config_set_tls_client_cert(config, cert, key), WSCONN_OK);
    c->con = wsconn_create(r);
    CHECK_EQ(wsconn_set_config(c->con, config), WSCONN_OK);
    wsconn_config_free(config);
    wsconn_set_build_func(c->con, client_on_build, c);
    wsconn_set_message_func(c->con, client_on_message, c);
    wsconn_set_close_ex_func(c->con, client_on_close, c);
    CHECK_EQ(wsconn_connect(c->con, url), WSCONN_OK);
}

/* Mutual TLS: the upgrade callback decides on the SNI name and the
 * client's certificate; the certificate's bytes are read again when open. */
struct mtls_conn {
    wsconn_t *con;
    const uint8_t *der;
    size_t der_len;
};
static int mtls_accepted, mtls_refused, mtls_no_sni, mtls_built_ok, mtls_closed;
static char mtls_names[64];

static int der_has(const uint8_t *der, size_t len, const char *needle) {
    size_t n = strlen(needle);
    for (size_t i = 0; der != NULL && i + n <= len; i++)
        if (memcmp(der + i, needle, n) == 0) return 1;
    return 0;
}

static int on_mtls_upgrade(wsconn_t *con, void *arg) {
    struct mtls_conn *m = arg;
    const char *sni = wsconn_tls_server_name(con);
    m->der = wsconn_tls_peer_certificate(con, 0, &m->der_len);
    size_t len = 0;
    CHECK(wsconn_tls_peer_certificate(con, 1, &len) == NULL); /* only its own was sent */
    CHECK(wsconn_tls_peer_certificate(con, 0, NULL) == NULL);
    CHECK(m->der != NULL && m->der_len > 100);
    if (sni == NULL) mtls_no_sni++;
    if (sni != NULL && strcmp(sni, "localhost") == 0 && der_has(m->der, m->der_len, "alice.client.test")) {
        static const wsconn_header_t h[] = {{"X-Client", "alice"}};
        mtls_accepted++;
        strncat(mtls_names, sni, sizeof mtls_names - strlen(mtls_names) - 1);
        return wsconn_upgrade_accept(con, NULL, h, 1) == WSCONN_OK ? WSCONN_UPGRADE_ACCEPT : WSCONN_UPGRADE_REJECT;
    }
    mtls_refused++;
    static const char body[] = "unknown client\n";
    wsconn_upgrade_reject(con, sni == NULL ? 421 : 403, NULL, 0, body, sizeof body - 1);
    return WSCONN_UPGRADE_REJECT;
}

static void mtls_on_build(int fd, void *arg) {
    struct mtls_conn *m = arg;
    (void)fd;
    size_t len = 0;
    const uint8_t *der = wsconn_tls_peer_certificate(m->con, 0, &len);
    /* The bytes the callback saw are still there, unchanged. */
    if (der == m->der && len == m->der_len && der_has(der, len, "alice.client.test")) mtls_built_ok++;
}

static void mtls_on_close(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    struct mtls_conn *m = arg;
    (void)code;
    (void)reason;
    (void)reason_len;
    mtls_closed++;
    wsconn_release(con);
    free(m);
}

static wsconn_reactor_t *main_reactor;

static int on_mtls_accept(int fd, void *arg) {
    (void)arg;
    struct mtls_conn *m = calloc(1, sizeof *m);
    m->con = wsconn_create(main_reactor);
    wsconn_set_upgrade_func(m->con, on_mtls_upgrade, m);
    wsconn_set_build_func(m->con, mtls_on_build, m);
    wsconn_set_message_func(m->con, worker_on_message, m);
    wsconn_set_close_ex_func(m->con, mtls_on_close, m);
    wsconn_set_fd(m->con, fd);
    if (wsconn_start(m->con) != WSCONN_OK) {
        wsconn_release(m->con);
        free(m);
    }
    return 0;
}

static int run_tls(char **files) {
    const char *cert = files[0], *key = files[1], *ca = files[2];
    const char *alice_cert = files[3], *alice_key = files[4], *bob_cert = files[5], *bob_key = files[6];
    pthread_t worker;
    pthread_create(&worker, NULL, worker_main, NULL);
    while (!atomic_load(&worker_ready)) usleep(1000);

    wsconn_reactor_t *r = main_reactor = wsconn_reactor_create();
    CHECK(wsconn_accepted_take(3) == NULL); /* outside an accept callback */
    wsconn_acceptor_t *acc = wsconn_acceptor_create(r);
    CHECK_EQ(wsconn_acceptor_set_tls(acc, cert, key), WSCONN_OK);
    wsconn_acceptor_set_accept_func(acc, on_handoff_accept, NULL);
    CHECK_EQ(wsconn_acceptor_start(acc, "127.0.0.1", 0), WSCONN_OK);
    char url[128];

    /* Handed off: wss:// echoes on the worker's thread; ws:// fails there. */
    struct client clients[3], plain, dropped;
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/", wsconn_acceptor_port(acc));
    for (int i = 0; i < 3; i++) client_start(&clients[i], r, url, ca, NULL, NULL);
    PUMP_UNTIL(r, clients[0].closes && clients[1].closes && clients[2].closes, 20000);
    for (int i = 0; i < 3; i++) {
        CHECK(clients[i].built && clients[i].echoed);
        CHECK_EQ(clients[i].close_code, 1000);
        CHECK_EQ(clients[i].close_error, WSCONN_OK);
        wsconn_release(clients[i].con);
    }
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", wsconn_acceptor_port(acc));
    client_start(&plain, r, url, NULL, NULL, NULL);
    PUMP_UNTIL(r, plain.closes, 20000);
    CHECK_EQ(plain.closes, 1);
    CHECK_EQ(plain.built, 0);
    CHECK(plain.close_error != WSCONN_OK);
    wsconn_release(plain.con);
    /* Taken, then freed unused: the client sees the socket close. */
    free_next_taken = 1;
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/", wsconn_acceptor_port(acc));
    client_start(&dropped, r, url, ca, NULL, NULL);
    PUMP_UNTIL(r, dropped.closes, 20000);
    CHECK_EQ(dropped.built, 0);
    CHECK(dropped.close_error != WSCONN_OK);
    CHECK_EQ(free_next_taken, 0);
    wsconn_release(dropped.con);
    PUMP_UNTIL(r, atomic_load(&worker_closed) == 4, 10000);
    CHECK_EQ(atomic_load(&worker_served), 3);
    CHECK_EQ(atomic_load(&worker_closed), 4); /* the 3 echoes and the plain one */
    CHECK_EQ(atomic_load(&worker_accepted_fd_ok), 4);

    /* Mutual TLS, decided on the SNI name and the certificate. */
    wsconn_acceptor_t *mtls = wsconn_acceptor_create(r);
    CHECK_EQ(wsconn_acceptor_set_tls(mtls, cert, key), WSCONN_OK);
    CHECK_EQ(wsconn_acceptor_set_tls_client_ca(mtls, ca), WSCONN_OK);
    wsconn_acceptor_set_accept_func(mtls, on_mtls_accept, NULL);
    CHECK_EQ(wsconn_acceptor_start(mtls, "127.0.0.1", 0), WSCONN_OK);
    int port = wsconn_acceptor_port(mtls);
    struct client alice, alice_by_ip, bob, anonymous;
    snprintf(url, sizeof url, "wss://localhost:%d/", port);
    client_start(&alice, r, url, ca, alice_cert, alice_key);
    client_start(&bob, r, url, ca, bob_cert, bob_key);
    client_start(&anonymous, r, url, ca, NULL, NULL);
    snprintf(url, sizeof url, "wss://127.0.0.1:%d/", port);
    client_start(&alice_by_ip, r, url, ca, alice_cert, alice_key);
    PUMP_UNTIL(r, alice.closes && bob.closes && anonymous.closes && alice_by_ip.closes, 20000);
    CHECK(alice.built && alice.echoed);
    CHECK_EQ(alice.close_error, WSCONN_OK);
    /* Refused by the program: the client reports the status it got. */
    CHECK_EQ(bob.built, 0);
    CHECK_EQ(bob.close_error, WSCONN_ERR_HANDSHAKE_REFUSED);
    CHECK_EQ(wsconn_handshake_status(bob.con), 403);
    CHECK_EQ(alice_by_ip.built, 0);
    CHECK_EQ(alice_by_ip.close_error, WSCONN_ERR_HANDSHAKE_REFUSED);
    CHECK_EQ(wsconn_handshake_status(alice_by_ip.con), 421);
    CHECK_EQ(anonymous.built, 0);
    CHECK(anonymous.close_error != WSCONN_OK && anonymous.close_error != WSCONN_ERR_HANDSHAKE_REFUSED);
    CHECK_EQ(mtls_accepted, 1);
    CHECK_EQ(mtls_refused, 2);
    CHECK_EQ(mtls_no_sni, 1);
    CHECK_STR(mtls_names, "localhost");
    CHECK_EQ(mtls_built_ok, 1);
    CHECK_EQ(wsconn_acceptor_tls_refused(mtls), 1);
    wsconn_release(alice.con);
    wsconn_release(bob.con);
    wsconn_release(anonymous.con);
    wsconn_release(alice_by_ip.con);
    PUMP_UNTIL(r, mtls_closed == 4, 10000); /* the server sides */
    CHECK_EQ(mtls_closed, 4);

    atomic_store(&worker_stop, 1);
    pthread_join(worker, NULL);
    CHECK_EQ(wsconn_reactor_release(worker_reactor), WSCONN_OK);
    wsconn_acceptor_release(acc);
    wsconn_acceptor_release(mtls);
    CHECK_EQ(wsconn_reactor_release(r), WSCONN_OK);
    return test_summary();
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "pending") == 0) return run_pending();
    if (argc == 2 && strcmp(argv[1], "session") == 0) return run_session();
    if (argc == 9 && strcmp(argv[1], "tls") == 0) return run_tls(argv + 2);
    fprintf(stderr, "usage: upgrade_test pending | session | tls CERT KEY CA ALICE_CERT ALICE_KEY BOB_CERT BOB_KEY\n");
    return 2;
}
