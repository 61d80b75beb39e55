/*
 * echo_server.c - a WebSocket echo server on the wsconn reactor API.
 *
 * This is gbase's test/test_wsconn.c ported to wsconn with as few changes as
 * possible.  The shape is the same:
 *
 *   reactor  <- acceptor with an accept callback
 *   accept callback: malloc a per-connection context, create a wsconn_t on
 *       the reactor, set its build/read/close callbacks, give it the fd,
 *       store the context in a table indexed by fd ("idtable"), start it
 *   read callback:  echo the message with wsconn_send(), return buflen
 *   close callback: release the wsconn_t, free the context
 *   main loop:      dispatch until SIGTERM has drained the reactor
 *                   (gbase: while (running) reactor_dispatch(r, 100))
 *
 * What differs from gbase, and why:
 *
 *   - gbase's callbacks had no user argument; wsconn's take (fd, arg, ...).
 *     The fd-style callbacks below still find their context in the fd table,
 *     as gbase did.
 *   - gbase was text only.  By default this server echoes binary messages as
 *     binary: it sets a message callback (wsconn_set_message_func), which gets
 *     the message type and replaces the read callback.  Run with -g ("gbase
 *     mode") to use the gbase read callback and wsconn_send() instead (text
 *     only: wsconn_send sends a TEXT message).
 *   - wsconn_send() can fail with WSCONN_ERR_FULL when the peer does not read
 *     its echoes (the output is over the limit, 16 MiB by default).  gbase
 *     closed the connection; here the echo is kept in a per-connection queue,
 *     reading is paused, and the drain callback sends the queue and resumes
 *     reading when the output has room again.  No echo is lost.
 *   - It also answers plain HTTP: GET / (and /index.html) returns index.html,
 *     a page that runs an echo test in a browser; any other path is a 404.
 *   - SIGINT/SIGTERM drain the server (wsconn_reactor_drain, each reactor on
 *     its own thread): it stops accepting, refuses handshakes in progress
 *     (503), closes every connection with 1001 and exits 0 once they all
 *     ended, or at --drain-ms (the rest cut); a second signal cuts at once.
 *   - A listening socket handed over as fd 3 (systemd's LISTEN_FDS and
 *     LISTEN_PID: a socket unit, or the process this one replaces) is used
 *     instead of binding one: a restart is starting the new process on the
 *     same socket, then SIGTERM to the old one (packaging/systemd/).
 *   - GET /metrics answers the counters of every reactor, summed, in
 *     Prometheus' text format, with the process's RSS and open fds.
 *   - Logging is off unless -v is given (gbase printed every message); -v
 *     also prints the library's log (refused handshakes, TLS failures,
 *     timeouts, budget pauses, drains), rate-limited by the library.
 *   (ops.h holds the signals, hand-over, /metrics and log parts, shared with
 *   chat_server.c.)
 *
 * Usage: echo_server [-t N] [-v] [-g] [-z] [-m MIB] [-T MS] [-d DIR]
 *                    [--deflate-dedicated BITS] [--drain-ms MS]
 *                    [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]] [port]
 *   port   default 9998; 0 picks a free port.  Binds 127.0.0.1, unless a
 *          socket was handed over (LISTEN_FDS): then it is ignored.
 *   -t N   N threads, one reactor each, sharing the port (SO_REUSEPORT)
 *   -v     log connections and messages to stderr, the memory the
 *          connections hold (every second, when it changed), and the
 *          library's log lines (INFO and above)
 *   -m MIB memory budget of the whole server in MiB, split evenly among the
 *          reactors (default: the library's, 256 MiB per reactor; 0: none)
 *   -T MS  message timeout in ms (default: the library's, 60000; 0: none)
 *   -g     gbase mode: text echo through the read callback and wsconn_send()
 *   -z     permessage-deflate in the shared mode: no context takeover, the
 *          thread's streams serve every connection (no memory per connection)
 *   --deflate-dedicated BITS
 *          permessage-deflate with context takeover and BITS-bit windows
 *          (8-15): each connection has its own streams
 *   -d DIR directory holding index.html (default: the executable's directory,
 *          then the directory the example was compiled in)
 *   --tls-cert FILE --tls-key FILE
 *          serve TLS (wss:// and the page over https://) with this PEM
 *          certificate chain and key; SIGHUP reloads both files (a bad file
 *          keeps the certificate in place)
 *   --tls-client-ca FILE
 *          mutual TLS: clients must show a certificate signed by an
 *          authority of this PEM file
 *   --allow-origin ORIGIN (repeatable)
 *          browsers may connect only from pages of these origins
 *          (scheme://host[:port]); others get 403
 *   --auth-token TOKEN
 *          clients must show TOKEN ("Authorization: Bearer TOKEN", or
 *          "access_token=TOKEN" in the URL's query); others get 401
 *   --auth-delay MS
 *          decide the token check MS ms later, on a reactor timer, as a
 *          server asking a database would (the handshake waits meanwhile)
 *   --max-conns-per-ip N
 *          at most N connections at once from one address (IPv6: /64)
 *   --proxy-protocol
 *          expect a PROXY protocol header (v1 or v2) from a load balancer
 *          on each connection: its client address counts for the limits
 *          and the log
 *   --drain-ms MS
 *          how long a drain (SIGTERM, SIGINT) waits for connections to end
 *          before it cuts them (default 5000)
 *   --busy-poll US
 *          poll for up to US microseconds before the thread sleeps (CPU for
 *          fewer wake-ups: see wsconn_reactor_set_busy_poll)
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ops.h"
#include "wsconn.h"
#include "auth.h"

#define DEFAULT_PORT 9998

/* Where `make` compiled this file; the last place index.html is looked for. */
#ifndef EXAMPLES_DIR
#define EXAMPLES_DIR "."
#endif

/* An echo that did not fit in the output (WSCONN_ERR_FULL), to send later. */
struct pending {
    struct pending *next;
    int type; /* WSCONN_MSG_TEXT or WSCONN_MSG_BINARY */
    size_t len;
    uint8_t data[];
};

/* Per-connection context (gbase: WSCtx). */
/* What few connections need: echoes waiting for room (reading paused
 * meanwhile), an --auth-delay decision to come.  Made on first need and freed
 * once unused, so that an idle connection's context stays 24 bytes (a 32-byte
 * block of malloc). */
struct ws_rare {
    struct pending *head, *tail; /* echoes waiting for room, oldest first */
    int paused;                  /* reading paused until the queue is sent */
    wsconn_timer_t *decide_timer; /* --auth-delay: the decision to come */
};

struct ws_ctx {
    wsconn_t *con;
    struct ws_rare *rare; /* NULL until needed */
    int fd;
    int authorized; /* --auth-token: the request carried it */
};

/* One reactor per thread (-t N): the reactor and the connection table are
 * thread-local, so threads share nothing but the listening port. */
static _Thread_local wsconn_reactor_t *r;
static _Thread_local int thread_index;
static int verbose;
static int gbase_mode;
static int threads = 1;
static int budget_mib = -1;      /* -m; -1: the library's default */
static int deflate_mode;          /* -z, --deflate-dedicated; 0: WSCONN_DEFLATE_OFF */
static int deflate_bits = 15;     /* --deflate-dedicated BITS */
static long message_timeout = -1; /* -T; -1: the library's default */
static const char *tls_cert;        /* --tls-cert; NULL: plain */
static const char *tls_key;         /* --tls-key */
static const char *tls_client_ca;   /* --tls-client-ca; NULL: none asked for */
static volatile sig_atomic_t reloads; /* SIGHUPs received (each worker reloads once per) */
#define MAX_ORIGINS 16
static const char *allowed_origins[MAX_ORIGINS]; /* --allow-origin */
static int origin_count;
static const char *auth_token;    /* --auth-token; NULL: anyone */
static int auth_delay_ms = -1;    /* --auth-delay; -1: decide at once */
static int max_conns_per_ip;      /* --max-conns-per-ip; 0: no limit */
static int proxy_protocol;        /* --proxy-protocol */
static int busy_poll_us;          /* --busy-poll; 0: sleep at once */

/* index.html, read at startup (NULL if it was not found). */
static char *index_page;
static size_t index_len;

#define LOG(...)                                                               \
    do {                                                                       \
        if (verbose)                                                           \
            fprintf(stderr, __VA_ARGS__);                                      \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The connection table, indexed by fd (gbase: idtable).                    */

static _Thread_local struct ws_ctx **con_table;
static _Thread_local size_t con_table_size;
static _Thread_local size_t con_count;

static struct ws_ctx *table_get(int fd)
{
    if (fd < 0 || (size_t)fd >= con_table_size)
        return NULL;
    return con_table[fd];
}

static int table_add(int fd, struct ws_ctx *ctx)
{
    if (fd < 0)
        return -1;
    if ((size_t)fd >= con_table_size) {
        size_t n = con_table_size ? con_table_size : 1024;
        while (n <= (size_t)fd)
            n *= 2;
        struct ws_ctx **t = realloc(con_table, n * sizeof *t);
        if (t == NULL)
            return -1;
        memset(t + con_table_size, 0, (n - con_table_size) * sizeof *t);
        con_table = t;
        con_table_size = n;
    }
    if (con_table[fd] != NULL)
        return -1;
    con_table[fd] = ctx;
    con_count++;
    return 0;
}

static void table_remove(int fd)
{
    if (table_get(fd) != NULL) {
        con_table[fd] = NULL;
        con_count--;
    }
}

/* ------------------------------------------------------------------------ */
/* Echo, with a queue for what does not fit.                                */

static int send_typed(wsconn_t *con, int type, const void *data, size_t len)
{
    if (type == WSCONN_MSG_BINARY)
        return wsconn_send_binary(con, data, len);
    return wsconn_send_text(con, data, len);
}

/* The rare part, made if missing; NULL when out of memory. */
static struct ws_rare *rare_of(struct ws_ctx *ctx)
{
    if (ctx->rare == NULL)
        ctx->rare = calloc(1, sizeof *ctx->rare);
    return ctx->rare;
}

/* Frees the rare part once nothing in it is in use. */
static void rare_trim(struct ws_ctx *ctx)
{
    struct ws_rare *rare = ctx->rare;
    if (rare && !rare->head && !rare->paused && !rare->decide_timer) {
        free(rare);
        ctx->rare = NULL;
    }
}

/* Whether echoes wait for room (a new one goes behind them). */
static int has_queue(const struct ws_ctx *ctx)
{
    return ctx->rare != NULL && ctx->rare->head != NULL;
}

static void ctx_free(struct ws_ctx *ctx)
{
    struct ws_rare *rare = ctx->rare;
    if (rare) {
        while (rare->head) {
            struct pending *p = rare->head;
            rare->head = p->next;
            free(p);
        }
        wsconn_timer_release(rare->decide_timer); /* a decision still to come */
        free(rare);
    }
    wsconn_release(ctx->con);
    free(ctx);
}

/* Keeps a copy of an echo that got WSCONN_ERR_FULL and stops reading until
 * the drain callback has sent it.  Returns 0, or -1 (out of memory). */
static int queue_echo(struct ws_ctx *ctx, int type, const void *data, size_t len)
{
    struct ws_rare *rare = rare_of(ctx);
    if (rare == NULL)
        return -1;
    struct pending *p = malloc(sizeof *p + len);
    if (p == NULL)
        return -1;
    p->next = NULL;
    p->type = type;
    p->len = len;
    if (len > 0)
        memcpy(p->data, data, len);
    if (rare->tail)
        rare->tail->next = p;
    else
        rare->head = p;
    rare->tail = p;
    if (!rare->paused) {
        LOG("fd[%d] output full: reading paused\n", ctx->fd);
        wsconn_pause_read(ctx->con);
        rare->paused = 1;
    }
    return 0;
}

/* Echoes one message, or queues it if the output is full (or if earlier
 * echoes are already waiting: order is kept).  Returns 0, or a negative
 * WSCONN_ERR_* when the echo is impossible. */
static int echo(struct ws_ctx *ctx, int type, const void *data, size_t len)
{
    int rc = WSCONN_ERR_FULL;
    if (!has_queue(ctx))
        rc = send_typed(ctx->con, type, data, len);
    if (rc == WSCONN_ERR_FULL)
        rc = queue_echo(ctx, type, data, len) == 0 ? WSCONN_OK : WSCONN_ERR_FULL;
    return rc;
}

/* The output has room again: send the queued echoes, then read again. */
static void on_drain(wsconn_t *con, void *arg)
{
    struct ws_ctx *ctx = arg;
    struct ws_rare *rare = ctx->rare;
    if (rare == NULL)
        return;
    while (rare->head) {
        struct pending *p = rare->head;
        int rc = send_typed(con, p->type, p->data, p->len);
        if (rc == WSCONN_ERR_FULL) {
            /* Still no room: the failed send arms the next drain. */
            LOG("fd[%d] still full\n", ctx->fd);
            return;
        }
        if (rc != WSCONN_OK && rc != WSCONN_ERR_CLOSED)
            fprintf(stderr, "echo_server: fd[%d] send: %s\n", ctx->fd,
                    wsconn_strerror(rc));
        rare->head = p->next;
        if (rare->head == NULL)
            rare->tail = NULL;
        free(p);
    }
    if (rare->paused) {
        LOG("fd[%d] drained: reading resumed\n", ctx->fd);
        rare->paused = 0;
        wsconn_resume_read(con);
    }
    rare_trim(ctx);
}

/* ------------------------------------------------------------------------ */
/* Connection callbacks.                                                    */

/* gbase's read callback (used with -g): a complete message; returns the
 * bytes consumed, < 0 closes the connection. */
static int on_read(int fd, void *arg, const char *buffer, int buflen)
{
    struct ws_ctx *ctx = table_get(fd);
    (void)arg;
    if (!ctx)
        return -1;
    LOG("fd[%d] read %d bytes\n", fd, buflen);
    int rc = WSCONN_ERR_FULL;
    if (!has_queue(ctx))
        rc = wsconn_send(ctx->con, buffer, buflen); /* a TEXT message */
    if (rc == WSCONN_ERR_FULL)
        rc = queue_echo(ctx, WSCONN_MSG_TEXT, buffer, (size_t)buflen);
    if (rc < 0) {
        fprintf(stderr, "echo_server: fd[%d] send back fail: %s\n", fd,
                wsconn_strerror(rc));
        return -1;
    }
    return buflen;
}

/* The default: a complete message with its type; echoed with the same type. */
static void on_message(wsconn_t *con, void *arg, int type, const uint8_t *data,
                       size_t len)
{
    struct ws_ctx *ctx = arg;
    LOG("fd[%d] %s message, %zu bytes\n", ctx->fd,
        type == WSCONN_MSG_BINARY ? "binary" : "text", len);
    int rc = echo(ctx, type, data, len);
    if (rc != WSCONN_OK && rc != WSCONN_ERR_CLOSED) {
        fprintf(stderr, "echo_server: fd[%d] echo: %s\n", ctx->fd,
                wsconn_strerror(rc));
        wsconn_close(con, 1011, "echo failed");
    }
}

static void on_build(int fd, void *arg)
{
    struct ws_ctx *ctx = arg;
    if (!verbose)
        return; /* the peer's address costs a system call: only for the log */
    char ip[64];
    int port = wsconn_peer_address(ctx->con, ip, sizeof ip);
    if (port >= 0)
        LOG("fd[%d] complete handshake, peer %s port %d\n", fd, ip, port);
    else
        LOG("fd[%d] complete handshake\n", fd);
}

/* --auth-delay: the decision taken later, on the reactor's thread. */
static void on_decide(wsconn_timer_t *timer, void *arg)
{
    struct ws_ctx *ctx = arg;
    ctx->rare->decide_timer = NULL;
    rare_trim(ctx);
    wsconn_timer_release(timer);
    int rc = ctx->authorized ? wsconn_upgrade_accept(ctx->con, NULL, NULL, 0) : auth_refuse(ctx->con);
    if (rc != WSCONN_OK)
        LOG("fd[%d] late decision: %s\n", ctx->fd, wsconn_strerror(rc));
}

/* --auth-token: who may connect, decided before any byte of the answer. */
static int on_upgrade(wsconn_t *con, void *arg)
{
    struct ws_ctx *ctx = arg;
    ctx->authorized = auth_token == NULL || auth_has_token(con, auth_token);
    struct ws_rare *rare = auth_delay_ms >= 0 ? rare_of(ctx) : NULL;
    if (rare != NULL) {
        rare->decide_timer = wsconn_timer_create(r, on_decide, ctx);
        if (rare->decide_timer != NULL &&
            wsconn_timer_start(rare->decide_timer, (uint64_t)auth_delay_ms, 0) == WSCONN_OK)
            return WSCONN_UPGRADE_PENDING;
        wsconn_timer_release(rare->decide_timer);
        rare->decide_timer = NULL;
        rare_trim(ctx);
    }
    if (!ctx->authorized)
        auth_refuse(con);
    return WSCONN_UPGRADE_ACCEPT;
}

/* Called just before on_close, with the close code: only for the log.
 * Error codes (1002 protocol error, 1007 invalid UTF-8, 1009 too big, 1011...)
 * are always logged; normal ends (1000, 1001, 1005 no code, 1006 TCP dropped,
 * and the application codes 3000-4999) only with -v. */
static void on_close_ex(wsconn_t *con, void *arg, int code, const char *reason,
                        size_t reason_len)
{
    struct ws_ctx *ctx = arg;
    (void)con;
    int error = code >= 1002 && code < 3000 && code != 1005 && code != 1006;
    if (error || verbose)
        fprintf(stderr, "echo_server: fd[%d] closed with %d \"%.*s\"\n", ctx->fd,
                code, (int)reason_len, reason ? reason : "");
}

/* Called once, whatever ended the connection; releasing here is allowed. */
static void on_close(int fd, void *arg)
{
    struct ws_ctx *ctx = table_get(fd);
    (void)arg;
    if (!ctx)
        return;
    LOG("fd[%d] close\n", fd);
    table_remove(fd);
    ctx_free(ctx);
}

/* A plain HTTP request (no Upgrade). */
static int on_http(wsconn_t *con, void *arg, const char *method, const char *path)
{
    struct ws_ctx *ctx = arg;
    size_t plen = strcspn(path, "?#"); /* ignore a query string */
    LOG("fd[%d] HTTP %s %s\n", ctx->fd, method, path);

    if (strcmp(method, "GET") == 0 && plen == 8 && strncmp(path, "/metrics", 8) == 0)
        return ops_metrics(con, r, thread_index);
    if (strcmp(method, "GET") == 0 && index_page != NULL &&
        ((plen == 1 && path[0] == '/') ||
         (plen == 11 && strncmp(path, "/index.html", 11) == 0)))
        return wsconn_http_respond(con, 200, "text/html; charset=utf-8",
                                   index_page, index_len);

    static const char not_found[] = "404 not found\n";
    return wsconn_http_respond(con, 404, "text/plain; charset=utf-8",
                               not_found, sizeof not_found - 1);
}

/* A new connection (gbase: _accept_read).  Returning < 0 makes the library
 * close fd; otherwise the program owns it. */
static int on_accept(int fd, void *arg)
{
    (void)arg;
    struct ws_ctx *ctx = calloc(1, sizeof *ctx);
    if (ctx == NULL)
        return -1;
    ctx->fd = fd;
    ctx->con = wsconn_create(r);
    if (ctx->con == NULL) {
        free(ctx);
        return -1;
    }
    wsconn_set_build_func(ctx->con, on_build, ctx);
    wsconn_set_read_func(ctx->con, on_read, ctx);
    wsconn_set_close_func(ctx->con, on_close, ctx);
    if (!gbase_mode)
        wsconn_set_message_func(ctx->con, on_message, ctx); /* replaces read */
    wsconn_set_close_ex_func(ctx->con, on_close_ex, ctx);
    wsconn_set_drain_func(ctx->con, on_drain, ctx);
    wsconn_set_http_func(ctx->con, on_http, ctx);
    if (auth_token != NULL || auth_delay_ms >= 0)
        wsconn_set_upgrade_func(ctx->con, on_upgrade, ctx);

    wsconn_set_fd(ctx->con, fd); /* the wsconn_t owns (and closes) fd now */
    if (table_add(fd, ctx) != 0) {
        fprintf(stderr, "echo_server: fd[%d] cannot be added to the table\n", fd);
        ctx_free(ctx);
        return 0;
    }
    int rc = wsconn_start(ctx->con);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "echo_server: fd[%d] start: %s\n", fd, wsconn_strerror(rc));
        table_remove(fd);
        ctx_free(ctx);
        return 0;
    }
    LOG("fd[%d] connected\n", fd);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Setup.                                                                   */

static void on_sighup(int sig)
{
    (void)sig;
    reloads++;
}

/* Reads DIR/index.html into index_page.  Returns 0, or -1 if unreadable. */
static int load_index(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/index.html", dir) >= (int)sizeof path)
        return -1;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return -1;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? cap * 2 : 64 * 1024;
            char *b = realloc(buf, cap);
            if (b == NULL) {
                free(buf);
                fclose(f);
                return -1;
            }
            buf = b;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return -1;
    }
    index_page = buf;
    index_len = len;
    LOG("serving %s\n", path);
    return 0;
}

/* The directory of the running executable, from /proc/self/exe. */
static int exe_dir(char *out, size_t size)
{
    ssize_t n = readlink("/proc/self/exe", out, size - 1);
    if (n <= 0)
        return -1;
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash == NULL)
        return -1;
    *slash = '\0';
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [-t N] [-v] [-g] [-z] [-m MIB] [-T MS] [-d DIR]\n"
            "          [--deflate-dedicated BITS]\n"
            "          [--tls-cert FILE --tls-key FILE [--tls-client-ca FILE]]\n"
            "          [--allow-origin ORIGIN]... [--auth-token TOKEN [--auth-delay MS]]\n"
            "          [--max-conns-per-ip N] [--proxy-protocol] [--drain-ms MS]\n"
            "          [--busy-poll US] [port]\n"
            "          (default port %d)\n"
            "  -t N    N threads, one reactor each, sharing the port (SO_REUSEPORT)\n"
            "  -v      log connections, messages and memory held\n"
            "  -g      gbase mode: text-only echo via the read callback\n"
            "  -m MIB  memory budget of the server in MiB, split among the reactors (0: none)\n"
            "  -T MS   message timeout in ms (0: none)\n"
            "  -z      permessage-deflate, shared mode (no context takeover, no memory\n"
            "          per connection)\n"
            "  --deflate-dedicated BITS  permessage-deflate with context takeover and\n"
            "          BITS-bit windows (8-15), streams per connection\n"
            "  -d DIR  directory of index.html\n"
            "  --tls-cert FILE --tls-key FILE  serve wss:// and https:// (SIGHUP reloads)\n"
            "  --tls-client-ca FILE  mutual TLS: require client certificates signed by it\n"
            "  --allow-origin ORIGIN  only pages of ORIGIN (scheme://host[:port]) may connect\n"
            "          (repeatable); others get 403\n"
            "  --auth-token TOKEN  require \"Authorization: Bearer TOKEN\" or access_token=TOKEN\n"
            "          in the query; others get 401\n"
            "  --auth-delay MS  decide the token check MS ms later (pending handshake)\n"
            "  --max-conns-per-ip N  at most N connections from one address (IPv6: /64)\n"
            "  --proxy-protocol  expect a PROXY protocol v1/v2 header from a load balancer\n"
            "  --drain-ms MS  SIGTERM/SIGINT drain: time for connections to end (default %d)\n"
            "  --busy-poll US  poll up to US microseconds before sleeping (CPU for fewer wake-ups)\n"
            "  A socket handed over as fd 3 (LISTEN_FDS, LISTEN_PID) replaces the port.\n"
            "  GET /metrics: Prometheus metrics.\n",
            prog, DEFAULT_PORT, OPS_DEFAULT_DRAIN_MS);
}

/* ------------------------------------------------------------------------ */
/* One reactor thread: its acceptor (sharing the port with SO_REUSEPORT when
 * there are several threads), its connections, its loop.                    */

struct worker {
    pthread_t thread;
    int id;
    int port;
    int reuse_port;
    int listen_fd; /* handed over (ops_listen_fd), or -1: bind */
    wsconn_acceptor_t *acc;
    struct ops_thread ops;
    sig_atomic_t reloads_done;
    int status;
};

static void worker_cleanup(struct worker *w);

/* Creates this thread's reactor and starts listening. */
static int worker_listen(struct worker *w)
{
    r = wsconn_reactor_create();
    if (r == NULL) {
        fprintf(stderr, "echo_server: wsconn_reactor_create failed\n");
        return -1;
    }
    thread_index = w->id;
    ops_thread_init(&w->ops, w->id, r);
    if (verbose)
        wsconn_reactor_set_log_func(r, ops_log, "echo_server", WSCONN_LOG_INFO);
    if (budget_mib >= 0)
        wsconn_reactor_set_memory_budget(r, ((size_t)budget_mib << 20) / (size_t)threads);
    wsconn_reactor_set_busy_poll(r, (uint32_t)busy_poll_us);
    if (message_timeout >= 0 || deflate_mode != WSCONN_DEFLATE_OFF || origin_count > 0) {
        wsconn_config_t *config = wsconn_config_new();
        for (int i = 0; config != NULL && i < origin_count; i++)
            if (wsconn_config_add_allowed_origin(config, allowed_origins[i]) != WSCONN_OK) {
                fprintf(stderr, "echo_server: not an origin (scheme://host[:port]): %s\n",
                        allowed_origins[i]);
                wsconn_config_free(config);
                return -1;
            }
        if (config == NULL ||
            (message_timeout >= 0 &&
             wsconn_config_set_message_timeout(config, (uint32_t)message_timeout) != WSCONN_OK) ||
            wsconn_config_set_deflate(config, deflate_mode) != WSCONN_OK ||
            (deflate_mode == WSCONN_DEFLATE_DEDICATED &&
             wsconn_config_set_deflate_window_bits(config, deflate_bits, deflate_bits) != WSCONN_OK) ||
            wsconn_reactor_set_config(r, config) != WSCONN_OK) {
            fprintf(stderr, "echo_server: cannot set the message timeout or deflate\n");
            wsconn_config_free(config);
            return -1;
        }
        wsconn_config_free(config);
    }
    w->acc = wsconn_acceptor_create(r);
    if (w->acc == NULL) {
        fprintf(stderr, "echo_server: wsconn_acceptor_create failed\n");
        return -1;
    }
    wsconn_acceptor_set_accept_func(w->acc, on_accept, NULL);
    w->ops.acceptor = w->acc; /* stopped first at a signal */
    if (tls_cert != NULL) {
        int tls = wsconn_acceptor_set_tls(w->acc, tls_cert, tls_key);
        if (tls != WSCONN_OK) {
            fprintf(stderr, "echo_server: TLS with %s and %s: %s\n", tls_cert, tls_key,
                    wsconn_strerror(tls));
            return -1;
        }
        if (tls_client_ca != NULL) {
            tls = wsconn_acceptor_set_tls_client_ca(w->acc, tls_client_ca);
            if (tls != WSCONN_OK) {
                fprintf(stderr, "echo_server: client CA %s: %s\n", tls_client_ca, wsconn_strerror(tls));
                return -1;
            }
        }
    }
    if (w->reuse_port && w->listen_fd < 0)
        wsconn_acceptor_set_reuseport(w->acc, 1);
    if (wsconn_acceptor_set_limits(w->acc, 0, (uint32_t)max_conns_per_ip) != WSCONN_OK ||
        wsconn_acceptor_set_proxy_protocol(w->acc, proxy_protocol) != WSCONN_OK) {
        fprintf(stderr, "echo_server: cannot set the limits or PROXY protocol\n");
        return -1;
    }
    int rc = ops_listen(w->acc, w->listen_fd, "127.0.0.1", w->port);
    if (rc == WSCONN_OK)
        w->listen_fd = -1; /* the acceptor's now */
    if (rc != WSCONN_OK) {
        fprintf(stderr, "echo_server: cannot listen on 127.0.0.1:%d: %s\n", w->port,
                wsconn_strerror(rc));
        return -1;
    }
    return 0;
}

/* With -v: the memory this thread's connections hold, once a second when it
 * changed. */
static void log_memory(int id)
{
    static _Thread_local time_t last;
    static _Thread_local size_t last_buffered = (size_t)-1, last_waiting;
    time_t now = time(NULL);
    if (!verbose || now == last)
        return;
    last = now;
    size_t buffered = 0, waiting = 0;
    wsconn_reactor_memory(r, &buffered, &waiting);
    if (buffered == last_buffered && waiting == last_waiting)
        return;
    last_buffered = buffered;
    last_waiting = waiting;
    fprintf(stderr, "echo_server: reactor %d memory: %zu bytes buffered, %zu connections waiting\n",
            id, buffered, waiting);
}

/* The loop until the reactor drained, then the rest is released. Returns
 * the exit status. */
static int worker_run(struct worker *w)
{
    int status = 0;
    while (ops_step(&w->ops)) {
        int rc = wsconn_reactor_dispatch(r, 100);
        if (rc < 0) {
            fprintf(stderr, "echo_server: dispatch: %s\n", wsconn_strerror(rc));
            status = 1;
            break;
        }
        log_memory(w->id);
        if (w->reloads_done != reloads && tls_cert != NULL) {
            /* New connections get the new certificate; running ones keep theirs. */
            w->reloads_done = reloads;
            int tls = wsconn_acceptor_set_tls(w->acc, tls_cert, tls_key);
            printf("echo_server: thread %d: TLS reload: %s\n", w->id, wsconn_strerror(tls));
            fflush(stdout);
        }
    }
    if (w->ops.drained) {
        printf("echo_server: thread %d drained, %zu cut\n", w->id, w->ops.cut);
        fflush(stdout);
    }
    worker_cleanup(w);
    return status;
}

static void *worker_thread(void *arg)
{
    struct worker *w = arg;
    w->status = worker_listen(w) == 0 ? worker_run(w) : (worker_cleanup(w), 1);
    return NULL;
}

static void worker_cleanup(struct worker *w)
{
    ops_thread_end(&w->ops); /* before its reactor goes */
    if (w->acc != NULL) {
        wsconn_acceptor_release(w->acc);
        w->acc = NULL;
    }
    if (w->listen_fd >= 0) {
        close(w->listen_fd);
        w->listen_fd = -1;
    }
    /* After a drain none is left; after an error, what is left is dropped. */
    for (size_t fd = 0; fd < con_table_size; fd++) {
        struct ws_ctx *ctx = con_table[fd];
        if (ctx != NULL) {
            table_remove((int)fd);
            ctx_free(ctx);
        }
    }
    free(con_table);
    con_table = NULL;
    con_table_size = 0;
    if (r != NULL)
        wsconn_reactor_release(r);
    r = NULL;
}

int main(int argc, char **argv)
{
    int port = DEFAULT_PORT, opt, timeout;
    const char *dir = NULL;
    static const struct option long_options[] = {
        {"tls-cert", required_argument, NULL, 'C'},
        {"tls-key", required_argument, NULL, 'K'},
        {"tls-client-ca", required_argument, NULL, 'A'},
        {"deflate-dedicated", required_argument, NULL, 'D'},
        {"allow-origin", required_argument, NULL, 'O'},
        {"auth-token", required_argument, NULL, 'U'},
        {"auth-delay", required_argument, NULL, 'L'},
        {"max-conns-per-ip", required_argument, NULL, 'P'},
        {"proxy-protocol", no_argument, NULL, 'X'},
        {"drain-ms", required_argument, NULL, 'M'},
        {"busy-poll", required_argument, NULL, 'B'},
        {NULL, 0, NULL, 0},
    };
    while ((opt = getopt_long(argc, argv, "t:vgzm:T:d:h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'z':
            deflate_mode = WSCONN_DEFLATE_SHARED;
            break;
        case 'D':
            if (parse_int(optarg, 8, 15, &deflate_bits) < 0) {
                usage(argv[0]);
                return 2;
            }
            deflate_mode = WSCONN_DEFLATE_DEDICATED;
            break;
        case 'C':
            tls_cert = optarg;
            break;
        case 'O':
            if (origin_count == MAX_ORIGINS) {
                usage(argv[0]);
                return 2;
            }
            allowed_origins[origin_count++] = optarg;
            break;
        case 'U':
            auth_token = optarg;
            break;
        case 'L':
            if (parse_int(optarg, 0, INT_MAX, &auth_delay_ms) < 0) {
                usage(argv[0]);
                return 2;
            }
            break;
        case 'P':
            if (parse_int(optarg, 0, INT_MAX, &max_conns_per_ip) < 0) {
                usage(argv[0]);
                return 2;
            }
            break;
        case 'X':
            proxy_protocol = 1;
            break;
        case 'B':
            if (parse_int(optarg, 0, 1000000, &busy_poll_us) < 0) {
                usage(argv[0]);
                return 2;
            }
            break;
        case 'M':
            if (parse_int(optarg, 0, INT_MAX, &timeout) < 0) {
                usage(argv[0]);
                return 2;
            }
            ops_drain_ms = (unsigned)timeout;
            break;
        case 'K':
            tls_key = optarg;
            break;
        case 'A':
            tls_client_ca = optarg;
            break;
        case 't':
            if (parse_int(optarg, 1, 1024, &threads) < 0) {
                usage(argv[0]);
                return 2;
            }
            break;
        case 'v':
            verbose = 1;
            break;
        case 'g':
            gbase_mode = 1;
            break;
        case 'm':
            if (parse_int(optarg, 0, 1 << 20, &budget_mib) < 0) {
                usage(argv[0]);
                return 2;
            }
            break;
        case 'T':
            if (parse_int(optarg, 0, INT_MAX, &timeout) < 0) {
                usage(argv[0]);
                return 2;
            }
            message_timeout = timeout;
            break;
        case 'd':
            dir = optarg;
            break;
        default:
            usage(argv[0]);
            return 2;
        }
    }
    if ((tls_cert == NULL) != (tls_key == NULL) || (tls_client_ca != NULL && tls_cert == NULL) ||
        argc - optind > 1 ||
        (argc - optind == 1 && parse_int(argv[optind], 0, 65535, &port) < 0)) {
        usage(argv[0]);
        return 2;
    }

    /* The page for GET /. */
    char exe[PATH_MAX];
    if (dir != NULL) {
        if (load_index(dir) < 0) {
            fprintf(stderr, "echo_server: cannot read %s/index.html: %s\n", dir,
                    strerror(errno));
            return 1;
        }
    } else if ((exe_dir(exe, sizeof exe) < 0 || load_index(exe) < 0) &&
               load_index(EXAMPLES_DIR) < 0) {
        fprintf(stderr, "echo_server: index.html not found (use -d DIR); "
                        "GET / will be a 404\n");
    }

    /* Writes to a peer that has reset must fail with EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sighup; /* no SA_RESTART: interrupt the wait */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGHUP, &sa, NULL);
    /* SIGTERM, SIGINT: drain; a socket handed over as fd 3. */
    if (ops_init(threads) < 0)
        return 1;

    /* Thread 0 (this one) binds first, so that port 0 resolves to one port
     * that the other threads then share (SO_REUSEPORT). */
    struct worker *workers = calloc((size_t)threads, sizeof *workers);
    if (workers == NULL)
        return 1;
    for (int i = 0; i < threads; i++) {
        workers[i].id = i;
        workers[i].port = port;
        workers[i].reuse_port = threads > 1;
        workers[i].listen_fd = ops_listen_fd(i);
    }
    int status = 1, failed = 0;
    if (worker_listen(&workers[0]) == 0) {
        port = wsconn_acceptor_port(workers[0].acc);
        char where[80];
        snprintf(where, sizeof where, "127.0.0.1:%d", port);
        if (ops_inherited_fd >= 0)
            ops_inherited_address(where, sizeof where);
        printf("echo_server%s%s listening on %s\n", tls_cert != NULL ? " (TLS)" : "",
               ops_inherited_fd >= 0 ? " (socket handed over)" : "", where);
        LOG("%d reactor threads\n", threads);
        fflush(stdout);
        int started = 1;
        for (; started < threads; started++) {
            workers[started].port = port;
            if (pthread_create(&workers[started].thread, NULL, worker_thread,
                               &workers[started]) != 0) {
                fprintf(stderr, "echo_server: cannot start thread %d\n", started);
                ops_signals = 2; /* the others stop at once */
                failed = 1;
                break;
            }
        }
        status = worker_run(&workers[0]);
        for (int i = 1; i < started; i++) {
            pthread_join(workers[i].thread, NULL);
            if (workers[i].status != 0)
                status = workers[i].status;
        }
        if (failed)
            status = 1;
    } else {
        worker_cleanup(&workers[0]);
    }
    free(workers);
    free(index_page);
    return status;
}
