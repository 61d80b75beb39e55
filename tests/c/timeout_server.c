/*
 * timeout_server: an echo server on the reactor API with short timeouts.
 *
 *   timeout_server PORT
 *
 * Listens on 127.0.0.1:PORT (0 = a free port) and prints "listening on PORT".
 * Connections get a config with handshake timeout 500 ms, ping interval
 * 300 ms and pong timeout 300 ms. Every message is echoed with its type.
 * Runs until SIGTERM or SIGINT, then releases everything and exits 0 (1 if
 * anything unexpected happened).
 *
 * Output lines (stdout), read by tests/runtime_timeouts.rs:
 *   listening on PORT
 *   accept fd=FD
 *   open fd=FD
 *   close fd=FD code=C established=0|1 error=E ms=MS  (every close_ex callback;
 *                                                 E: wsconn_close_error;
 *                                                 MS since the accept)
 *   error ...
 *   stats accepted=A opened=O closed=C errors=E
 */
#include "wsconn.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_CONNS 1024

struct conn {
    wsconn_t *con;
    int fd;
    int established;
    int closed;
    double accepted_at;
};

static struct conn *conns[MAX_CONNS];
static long accepted, opened, closed_count, errors;
static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void on_build(int fd, void *arg) {
    struct conn *c = arg;
    c->established = 1;
    opened++;
    printf("open fd=%d\n", fd);
}

static void on_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len) {
    (void)arg;
    int rc = type == WSCONN_MSG_TEXT ? wsconn_send_text(con, (const char *)data, len)
                                     : wsconn_send_binary(con, data, len);
    if (rc != WSCONN_OK) {
        printf("error: echo of %zu bytes: %d (%s)\n", len, rc, wsconn_strerror(rc));
        errors++;
    }
}

static void on_close_ex(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    struct conn *c = arg;
    (void)reason;
    (void)reason_len;
    if (c->closed) {
        printf("error: second close callback for fd=%d\n", c->fd);
        errors++;
        return;
    }
    c->closed = 1;
    closed_count++;
    printf("close fd=%d code=%d established=%d error=%d ms=%.0f\n", c->fd, code, c->established,
           wsconn_close_error(con), now_ms() - c->accepted_at);
    /* Releasing from inside the close callback is allowed. */
    for (int i = 0; i < MAX_CONNS; i++)
        if (conns[i] == c) conns[i] = NULL;
    wsconn_release(con);
    free(c);
}

static int on_accept(int fd, void *arg) {
    wsconn_reactor_t *reactor = arg;
    int slot = -1;
    for (int i = 0; i < MAX_CONNS && slot < 0; i++)
        if (conns[i] == NULL) slot = i;
    if (slot < 0) {
        printf("error: too many connections\n");
        errors++;
        return -1;
    }
    struct conn *c = calloc(1, sizeof *c);
    wsconn_t *con = wsconn_create(reactor);
    if (!c || !con) {
        printf("error: out of memory or wsconn_create failed\n");
        errors++;
        free(c);
        wsconn_release(con);
        return -1;
    }
    c->con = con;
    c->fd = fd;
    c->accepted_at = now_ms();
    wsconn_set_build_func(con, on_build, c);
    wsconn_set_message_func(con, on_message, c);
    wsconn_set_close_ex_func(con, on_close_ex, c);
    wsconn_set_fd(con, fd);
    int rc = wsconn_start(con);
    if (rc != WSCONN_OK) {
        printf("error: wsconn_start = %d (%s)\n", rc, wsconn_strerror(rc));
        errors++;
        wsconn_release(con);
        free(c);
        return 0; /* the wsconn_t owned the fd */
    }
    conns[slot] = c;
    accepted++;
    printf("accept fd=%d\n", fd);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    wsconn_reactor_t *reactor = wsconn_reactor_create();
    wsconn_config_t *cfg = wsconn_config_new();
    if (!reactor || !cfg) {
        fprintf(stderr, "cannot create reactor/config\n");
        return 1;
    }
    int rc = wsconn_config_set_handshake_timeout(cfg, 500);
    if (rc == WSCONN_OK) rc = wsconn_config_set_ping_interval(cfg, 300);
    if (rc == WSCONN_OK) rc = wsconn_config_set_pong_timeout(cfg, 300);
    if (rc == WSCONN_OK) rc = wsconn_reactor_set_config(reactor, cfg);
    wsconn_config_free(cfg); /* copied by the reactor */
    if (rc != WSCONN_OK) {
        fprintf(stderr, "config: %s\n", wsconn_strerror(rc));
        return 1;
    }

    wsconn_acceptor_t *acc = wsconn_acceptor_create(reactor);
    if (!acc) {
        fprintf(stderr, "wsconn_acceptor_create returned NULL\n");
        return 1;
    }
    wsconn_acceptor_set_accept_func(acc, on_accept, reactor);
    rc = wsconn_acceptor_start(acc, "127.0.0.1", atoi(argv[1]));
    if (rc != WSCONN_OK) {
        fprintf(stderr, "wsconn_acceptor_start(127.0.0.1, %s): %s\n", argv[1], wsconn_strerror(rc));
        return 1;
    }
    printf("listening on %d\n", wsconn_acceptor_port(acc));

    while (!stop) {
        int n = wsconn_reactor_dispatch(reactor, 100);
        if (n < 0) {
            printf("error: wsconn_reactor_dispatch = %d (%s)\n", n, wsconn_strerror(n));
            errors++;
            break;
        }
    }

    /* Connections first, then the acceptor, then the reactor. */
    for (int i = 0; i < MAX_CONNS; i++) {
        if (conns[i]) {
            wsconn_release(conns[i]->con);
            free(conns[i]);
            conns[i] = NULL;
        }
    }
    wsconn_acceptor_release(acc);
    wsconn_reactor_release(reactor);
    printf("stats accepted=%ld opened=%ld closed=%ld errors=%ld\n", accepted, opened, closed_count, errors);
    return errors == 0 ? 0 : 1;
}
