/*
 * lifecycle_test: corners of the reactor API's lifecycle, from C.
 *
 *   1. A close_ex callback releases its connection: the gbase close callback
 *      that follows still gets the connection's socket, still open (gbase's
 *      promise); the socket is closed once the callbacks have returned.
 *   2. Topics shared in any order: share(R1, R0), then share(R0, R2); a
 *      publish on R1 reaches a subscriber on R2 (the groups merge).
 *
 * Each part runs a server and a client connection on the same reactor, on
 * 127.0.0.1. tests/runtime_lifecycle.rs runs it (also with ASan + UBSan).
 * Prints "N passed, M failed"; exits 1 if anything failed.
 */
#include "wsconn.h"
#include "test.h"

#include <fcntl.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int fd_is_open(int fd) {
    return fd >= 0 && fcntl(fd, F_GETFD) != -1;
}

/* Dispatches `r` until *flag is nonzero, at most ms milliseconds. */
static int run_until(wsconn_reactor_t *r, const int *flag, double ms) {
    double t0 = now_ms();
    while (!*flag && now_ms() - t0 < ms) {
        if (wsconn_reactor_dispatch(r, 20) < 0) return 0;
    }
    return *flag != 0;
}

/* An acceptor on `r` calling `accept` with `arg`; returns its port (0: failed). */
static int listen_on(wsconn_reactor_t *r, wsconn_acceptor_t **acc, wsconn_accept_func accept, void *arg) {
    *acc = wsconn_acceptor_create(r);
    if (*acc == NULL) return 0;
    wsconn_acceptor_set_accept_func(*acc, accept, arg);
    if (wsconn_acceptor_start(*acc, "127.0.0.1", 0) != WSCONN_OK) return 0;
    return wsconn_acceptor_port(*acc);
}

/* ------------------------------------------------------------------ */
/* 1. Released in close_ex, then the gbase close callback.             */

struct release_in_close {
    wsconn_reactor_t *r;
    wsconn_t *server;
    int server_fd;      /* from the build callback */
    int client_built;
    int close_ex_calls;
    int gbase_close_calls;
    int gbase_close_fd;
    int fd_open_in_gbase_close;
};

static void ric_server_build(int fd, void *arg) {
    struct release_in_close *t = arg;
    t->server_fd = fd;
}

static void ric_server_close_ex(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    struct release_in_close *t = arg;
    (void)reason;
    (void)reason_len;
    CHECK_EQ(code, 1000);
    t->close_ex_calls++;
    CHECK_EQ(wsconn_release(con), WSCONN_OK);
    t->server = NULL;
}

static void ric_server_close(int fd, void *arg) {
    struct release_in_close *t = arg;
    t->gbase_close_calls++;
    t->gbase_close_fd = fd;
    t->fd_open_in_gbase_close = fd_is_open(fd);
}

static int ric_accept(int fd, void *arg) {
    struct release_in_close *t = arg;
    wsconn_t *s = wsconn_create(t->r);
    wsconn_set_build_func(s, ric_server_build, t);
    wsconn_set_close_ex_func(s, ric_server_close_ex, t);
    wsconn_set_close_func(s, ric_server_close, t);
    wsconn_set_fd(s, fd);
    CHECK_EQ(wsconn_start(s), WSCONN_OK);
    t->server = s;
    return 0;
}

static void ric_client_build(int fd, void *arg) {
    (void)fd;
    struct release_in_close *t = arg;
    t->client_built = 1;
}

static void test_release_in_close_ex(void) {
    struct release_in_close t;
    memset(&t, 0, sizeof t);
    t.server_fd = t.gbase_close_fd = -1;
    t.r = wsconn_reactor_create();
    CHECK(t.r != NULL);
    if (t.r == NULL) return;
    wsconn_acceptor_t *acc;
    int port = listen_on(t.r, &acc, ric_accept, &t);
    CHECK(port > 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    wsconn_t *client = wsconn_create(t.r);
    wsconn_set_build_func(client, ric_client_build, &t);
    CHECK_EQ(wsconn_connect(client, url), WSCONN_OK);
    CHECK(run_until(t.r, &t.client_built, 5000));
    CHECK(t.server_fd >= 0);

    CHECK_EQ(wsconn_close(client, 1000, "bye"), WSCONN_OK);
    CHECK(run_until(t.r, &t.gbase_close_calls, 5000));
    CHECK_EQ(t.close_ex_calls, 1);
    CHECK_EQ(t.gbase_close_calls, 1);
    /* gbase's close callback gets the socket, open, even after close_ex released. */
    CHECK_EQ(t.gbase_close_fd, t.server_fd);
    CHECK(t.fd_open_in_gbase_close);
    CHECK(t.server == NULL);

    wsconn_release(client);
    wsconn_acceptor_release(acc);
    CHECK_EQ(wsconn_reactor_release(t.r), WSCONN_OK);
}

/* ------------------------------------------------------------------ */
/* 2. Sharing topics is transitive.                                    */

struct shared {
    wsconn_reactor_t *r;  /* the subscribers' reactor */
    wsconn_t *server;     /* the subscriber, the program's to release */
    int subscribed;
    int received;
    char last[32];
};

static void shared_server_build(int fd, void *arg) {
    (void)fd;
    (void)arg;
}

static int shared_accept(int fd, void *arg) {
    struct shared *t = arg;
    wsconn_t *s = wsconn_create(t->r);
    wsconn_set_build_func(s, shared_server_build, t);
    wsconn_set_fd(s, fd);
    CHECK_EQ(wsconn_start(s), WSCONN_OK);
    /* Subscribed before the handshake ends: it counts once open. */
    CHECK_EQ(wsconn_subscribe(s, "room"), WSCONN_OK);
    t->server = s;
    t->subscribed = 1;
    return 0;
}

static void shared_client_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len) {
    struct shared *t = arg;
    (void)con;
    CHECK_EQ(type, WSCONN_MSG_TEXT);
    size_t n = len < sizeof t->last - 1 ? len : sizeof t->last - 1;
    memcpy(t->last, data, n);
    t->last[n] = '\0';
    t->received++;
}

static int shared_client_open;

static void shared_client_build(int fd, void *arg) {
    (void)fd;
    (void)arg;
    shared_client_open = 1;
}

static void test_sharing_is_transitive(void) {
    wsconn_reactor_t *r[3];
    for (int i = 0; i < 3; i++) r[i] = wsconn_reactor_create();
    CHECK(r[0] && r[1] && r[2]);
    if (!r[0] || !r[1] || !r[2]) return;
    CHECK_EQ(wsconn_reactor_share_topics(r[1], r[0]), WSCONN_OK);
    CHECK_EQ(wsconn_reactor_share_topics(r[0], r[2]), WSCONN_OK);

    struct shared t;
    memset(&t, 0, sizeof t);
    t.r = r[2];
    wsconn_acceptor_t *acc;
    int port = listen_on(r[2], &acc, shared_accept, &t);
    CHECK(port > 0);
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/", port);
    wsconn_t *client = wsconn_create(r[2]);
    wsconn_set_build_func(client, shared_client_build, &t);
    wsconn_set_message_func(client, shared_client_message, &t);
    CHECK_EQ(wsconn_connect(client, url), WSCONN_OK);
    CHECK(run_until(r[2], &shared_client_open, 5000));
    CHECK(run_until(r[2], &t.subscribed, 5000));
    /* The server side may open a moment after the client: let it. */
    double t0 = now_ms();
    while (now_ms() - t0 < 200) wsconn_reactor_dispatch(r[2], 10);

    /* Published on R1, which shared with R0 only: R0 shared with R2 since. */
    CHECK_EQ(wsconn_publish(r[1], "room", WSCONN_MSG_TEXT, "from R1", 7), 0);
    CHECK(run_until(r[2], &t.received, 5000));
    CHECK_EQ(t.received, 1);
    CHECK(strcmp(t.last, "from R1") == 0);

    wsconn_release(client);
    wsconn_release(t.server);
    wsconn_acceptor_release(acc);
    for (int i = 0; i < 3; i++) CHECK_EQ(wsconn_reactor_release(r[i]), WSCONN_OK);
}

int main(void) {
    test_release_in_close_ex();
    test_sharing_is_transitive();
    return test_summary();
}
