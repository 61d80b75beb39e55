/*
 * backpressure_server: a reactor-API server that floods its one client.
 *
 *   backpressure_server PORT [MESSAGES [PAYLOAD [MAX_OUTPUT]]]
 *
 * Listens on 127.0.0.1:PORT (0 = a free port) and prints "listening on PORT".
 * The connections' config has max output MAX_OUTPUT (default 256 KiB). Once
 * the client's handshake completes it sends MESSAGES (default 2000) binary
 * messages of 4 + PAYLOAD bytes (default 16 KiB): a big-endian sequence
 * number, then bytes derived from it (pattern_byte below; the Rust test
 * computes the same). It sends as fast as it can until wsconn_send_binary
 * returns WSCONN_ERR_FULL, then waits for the drain callback to resume; after
 * the last message it closes with 1000 "done". It serves one client: when that
 * connection closes it prints its statistics and exits (0 if nothing went
 * wrong).
 *
 * tests/runtime_backpressure.rs is the client. Output lines (stdout):
 *   listening on PORT
 *   config messages=N payload=P frame=F max_output=M
 *   open fd=FD
 *   full ...                               (the first few FULL returns)
 *   closed code=C reason=R
 *   stats sent=N full=X drains=Y max_buffered=B vmhwm_kib=K errors=E
 */
#include "wsconn.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long messages = 2000;
static size_t payload = 16 * 1024;
static size_t max_output = 256 * 1024;

static wsconn_t *client;        /* the one connection */
static int done;                /* the connection closed */
static long sent;               /* messages queued */
static long full_returns;       /* wsconn_send_binary returned WSCONN_ERR_FULL */
static long drains;             /* drain callbacks */
static long drains_unexpected;  /* drain callbacks while not waiting for one */
static int waiting_for_drain;
static size_t max_buffered;     /* largest wsconn_buffered_amount seen */
static long errors;             /* anything unexpected */
static int close_code = -1;
static uint8_t *message;

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

/* The byte at offset i of message seq's payload (after the 4-byte number). */
static uint8_t pattern_byte(uint32_t seq, size_t i) {
    return (uint8_t)((seq * 2654435761u) >> 24 ^ (uint32_t)i * 31u ^ (uint32_t)(i >> 8));
}

static void fill_message(uint32_t seq) {
    message[0] = (uint8_t)(seq >> 24);
    message[1] = (uint8_t)(seq >> 16);
    message[2] = (uint8_t)(seq >> 8);
    message[3] = (uint8_t)seq;
    for (size_t i = 0; i < payload; i++) message[4 + i] = pattern_byte(seq, i);
}

static void note_buffered(wsconn_t *con) {
    size_t b = wsconn_buffered_amount(con);
    if (b > max_buffered) max_buffered = b;
}

/* Sends until WSCONN_ERR_FULL or the end; closes after the last message. */
static int close_sent;

static void pump(wsconn_t *con) {
    if (close_sent) return; /* a drain callback may follow the last message */
    while (sent < messages) {
        fill_message((uint32_t)sent);
        size_t before = wsconn_buffered_amount(con);
        int rc = wsconn_send_binary(con, message, 4 + payload);
        if (rc == WSCONN_ERR_FULL) {
            full_returns++;
            /* A refused send queued nothing. */
            if (wsconn_buffered_amount(con) != before) {
                printf("error: FULL changed buffered amount %zu -> %zu\n", before, wsconn_buffered_amount(con));
                errors++;
            }
            if (full_returns <= 5)
                printf("full sent=%ld buffered=%zu\n", sent, before);
            waiting_for_drain = 1;
            note_buffered(con);
            return;
        }
        if (rc != WSCONN_OK) {
            printf("error: wsconn_send_binary(%ld) = %d (%s)\n", sent, rc, wsconn_strerror(rc));
            errors++;
            return;
        }
        sent++;
        note_buffered(con);
    }
    close_sent = 1;
    int rc = wsconn_close(con, 1000, "done");
    if (rc != WSCONN_OK) {
        printf("error: wsconn_close = %d (%s)\n", rc, wsconn_strerror(rc));
        errors++;
    }
    printf("all %ld queued; close sent\n", sent);
    fflush(stdout);
}

static void on_build(int fd, void *arg) {
    wsconn_t *con = arg;
    printf("open fd=%d\n", fd);
    fflush(stdout);
    if (wsconn_established(con) != 0) {
        printf("error: wsconn_established = %d in the build callback\n", wsconn_established(con));
        errors++;
    }
    pump(con);
}

static void on_drain(wsconn_t *con, void *arg) {
    (void)arg;
    drains++;
    if (!waiting_for_drain) drains_unexpected++;
    waiting_for_drain = 0;
    note_buffered(con);
    pump(con);
}

static void on_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len) {
    (void)con;
    (void)arg;
    (void)data;
    printf("error: unexpected message type=%d len=%zu\n", type, len);
    errors++;
}

static void on_close_ex(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len) {
    (void)con;
    (void)arg;
    close_code = code;
    printf("closed code=%d reason=%.*s\n", code, (int)reason_len, reason ? reason : "");
    fflush(stdout);
    done = 1;
}

static int on_accept(int fd, void *arg) {
    wsconn_reactor_t *reactor = arg;
    if (client != NULL) {
        printf("error: a second connection (fd %d) refused\n", fd);
        errors++;
        return -1;
    }
    wsconn_t *con = wsconn_create(reactor);
    if (con == NULL) {
        printf("error: wsconn_create returned NULL\n");
        errors++;
        return -1;
    }
    wsconn_set_build_func(con, on_build, con);
    wsconn_set_message_func(con, on_message, NULL);
    wsconn_set_drain_func(con, on_drain, NULL);
    wsconn_set_close_ex_func(con, on_close_ex, NULL);
    wsconn_set_fd(con, fd);
    int rc = wsconn_start(con);
    if (rc != WSCONN_OK) {
        printf("error: wsconn_start = %d (%s)\n", rc, wsconn_strerror(rc));
        errors++;
        wsconn_release(con);
        return 0; /* the wsconn_t owned the fd and closed it */
    }
    client = con;
    return 0;
}

/* VmHWM (peak resident set) from /proc/self/status, in KiB; -1 if unknown. */
static long vmhwm_kib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) break;
    fclose(f);
    return kib;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 5) {
        fprintf(stderr, "usage: %s PORT [MESSAGES [PAYLOAD [MAX_OUTPUT]]]\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]);
    if (argc > 2) messages = atol(argv[2]);
    if (argc > 3) payload = (size_t)atol(argv[3]);
    if (argc > 4) max_output = (size_t)atol(argv[4]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    message = malloc(4 + payload);
    if (!message) return 2;

    wsconn_reactor_t *reactor = wsconn_reactor_create();
    wsconn_config_t *cfg = wsconn_config_new();
    if (!reactor || !cfg) {
        fprintf(stderr, "cannot create reactor/config\n");
        return 1;
    }
    int rc = wsconn_config_set_max_output(cfg, max_output);
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
    rc = wsconn_acceptor_start(acc, "127.0.0.1", port);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "wsconn_acceptor_start(127.0.0.1, %d): %s\n", port, wsconn_strerror(rc));
        return 1;
    }
    printf("listening on %d\n", wsconn_acceptor_port(acc));
    printf("config messages=%ld payload=%zu frame=%zu max_output=%zu\n", messages, payload, 4 + payload, max_output);

    /* Runs until the connection closed (or a signal, or 120 s). */
    double deadline = now_s() + 120;
    while (!done && !stop) {
        int n = wsconn_reactor_dispatch(reactor, 100);
        if (n < 0) {
            printf("error: wsconn_reactor_dispatch = %d (%s)\n", n, wsconn_strerror(n));
            errors++;
            break;
        }
        if (now_s() > deadline) {
            printf("error: timed out\n");
            errors++;
            break;
        }
    }
    if (!done) errors++;
    if (close_code != 1000) errors++;
    if (sent != messages) errors++;

    if (client) wsconn_release(client);
    wsconn_acceptor_release(acc);
    wsconn_reactor_release(reactor);
    free(message);

    printf("stats sent=%ld full=%ld drains=%ld drains_unexpected=%ld max_buffered=%zu vmhwm_kib=%ld errors=%ld\n",
           sent, full_returns, drains, drains_unexpected, max_buffered, vmhwm_kib(), errors);
    return errors == 0 ? 0 : 1;
}
