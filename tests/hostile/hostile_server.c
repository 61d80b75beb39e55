/*
 * hostile_server: a WebSocket echo server on the wsconn reactor API with a
 * short handshake timeout, for the timeout-dependent cases of
 * tests/hostile.rs (c-examples/echo_server has no option for it).
 *
 *   hostile_server PORT [HANDSHAKE_TIMEOUT_MS]
 *
 * Listens on 127.0.0.1:PORT (0 = a free port) and prints
 * "listening on PORT". Connections get a config with the handshake timeout
 * (default 1000 ms); everything else is the library's default. Every message
 * is echoed with its type; an echo that does not fit (WSCONN_ERR_FULL) closes
 * the connection with 1011 (the hostile tests never fill the output here).
 * Runs until SIGTERM or SIGINT, then releases everything and exits 0.
 *
 * Output lines (stdout, flushed per line), read by tests/hostile.rs:
 *   listening on PORT
 *   close code=C established=0|1 reason=REASON     (every close_ex callback)
 *   error ...                                      (anything unexpected)
 */
#include "wsconn.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct conn {
    wsconn_t *con;
    int established;
    struct conn *prev, *next; /* live connections, to release at exit */
};

static struct conn *live;
static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void unlink_conn(struct conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        live = c->next;
    if (c->next)
        c->next->prev = c->prev;
}

static void on_build(int fd, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    c->established = 1;
}

static void on_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len)
{
    (void)arg;
    int rc = type == WSCONN_MSG_TEXT ? wsconn_send_text(con, (const char *)data, len)
                                     : wsconn_send_binary(con, data, len);
    if (rc != WSCONN_OK && rc != WSCONN_ERR_CLOSED) {
        printf("error: echo of %zu bytes: %d (%s)\n", len, rc, wsconn_strerror(rc));
        wsconn_close(con, 1011, "echo failed");
    }
}

static void on_close_ex(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len)
{
    struct conn *c = arg;
    (void)con;
    printf("close code=%d established=%d reason=%.*s\n", code, c->established, (int)reason_len,
           reason ? reason : "");
}

static void on_close(int fd, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    unlink_conn(c);
    wsconn_release(c->con);
    free(c);
}

static int on_accept(int fd, void *arg)
{
    wsconn_reactor_t *r = arg;
    struct conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return -1;
    c->con = wsconn_create(r);
    if (c->con == NULL) {
        free(c);
        return -1;
    }
    wsconn_set_build_func(c->con, on_build, c);
    wsconn_set_message_func(c->con, on_message, c);
    wsconn_set_close_ex_func(c->con, on_close_ex, c);
    wsconn_set_close_func(c->con, on_close, c);
    wsconn_set_fd(c->con, fd);
    c->next = live;
    if (live)
        live->prev = c;
    live = c;
    int rc = wsconn_start(c->con);
    if (rc != WSCONN_OK) {
        printf("error: start fd=%d: %d (%s)\n", fd, rc, wsconn_strerror(rc));
        unlink_conn(c);
        wsconn_release(c->con);
        free(c);
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s PORT [HANDSHAKE_TIMEOUT_MS]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    long handshake_ms = argc == 3 ? strtol(argv[2], NULL, 10) : 1000;
    if (port < 0 || port > 65535 || handshake_ms <= 0 || handshake_ms > 3600000) {
        fprintf(stderr, "%s: bad port or timeout\n", argv[0]);
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    wsconn_reactor_t *r = wsconn_reactor_create();
    wsconn_config_t *cfg = wsconn_config_new();
    wsconn_acceptor_t *acc = NULL;
    int status = 1, rc;
    if (r == NULL || cfg == NULL) {
        fprintf(stderr, "reactor or config creation failed\n");
        goto out;
    }
    rc = wsconn_config_set_handshake_timeout(cfg, (uint32_t)handshake_ms);
    if (rc == WSCONN_OK)
        rc = wsconn_reactor_set_config(r, cfg);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "config: %s\n", wsconn_strerror(rc));
        goto out;
    }
    acc = wsconn_acceptor_create(r);
    if (acc == NULL) {
        fprintf(stderr, "acceptor creation failed\n");
        goto out;
    }
    wsconn_acceptor_set_accept_func(acc, on_accept, r);
    rc = wsconn_acceptor_start(acc, "127.0.0.1", port);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "listen on 127.0.0.1:%d: %s\n", port, wsconn_strerror(rc));
        goto out;
    }
    printf("listening on %d\n", wsconn_acceptor_port(acc));

    status = 0;
    while (!stop) {
        rc = wsconn_reactor_dispatch(r, 100);
        if (rc < 0 && !stop) {
            printf("error: dispatch: %s\n", wsconn_strerror(rc));
            status = 1;
            break;
        }
    }

out:
    if (acc != NULL)
        wsconn_acceptor_release(acc);
    while (live) {
        struct conn *c = live;
        unlink_conn(c);
        wsconn_release(c->con);
        free(c);
    }
    wsconn_config_free(cfg);
    if (r != NULL)
        wsconn_reactor_release(r);
    return status;
}
