/*
 * client.c - a WebSocket client on the wsconn reactor API.
 *
 * Connects to a ws:// or wss:// URL, sends each MESSAGE argument as a text message
 * (or, without arguments, each line of stdin), one at a time, printing every
 * reply on its own line.  After the last reply it closes with 1000 and exits
 * 0 when the server's close frame (code 1000) arrives.
 *
 *   client ws://127.0.0.1:9998/echo hello world
 *   printf 'one\ntwo\n' | client ws://127.0.0.1:9998/echo
 *   client --ca ca.pem wss://localhost:9443/echo hello
 *
 * wss:// verifies the server against the system's trust store, or against
 * the CA certificates of --ca FILE.  A failure prints the close error's code
 * and text (e.g. "error -20: TLS: ... unknown authority").
 *
 * stdin is read to its end before connecting (messages are sent only once
 * all of them are known).  Binary replies are printed as hex.
 *
 * Exit status: 0 on a clean close with 1000 after every reply arrived;
 * 1 on connect or handshake failure, an unclean or unexpected close, or when
 * the whole exchange takes longer than the deadline (-T, default 30 s);
 * 2 on a usage error.
 *
 * Usage: client [-z] [--deflate-dedicated BITS] [-T SECONDS] [--ca FILE]
 *               [--cert FILE --key FILE] ws[s]://HOST[:PORT]/PATH [MESSAGE...]
 *   -z            offer permessage-deflate in the shared mode (no context
 *                 takeover); what the server agreed to is printed to stderr
 *                 ("extensions: ...") once connected
 *   --deflate-dedicated BITS
 *                 offer permessage-deflate with context takeover and BITS-bit
 *                 windows (8-15) both ways, printed the same way
 *   --cert/--key  client certificate chain and key (PEM), for servers that ask
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "wsconn.h"

#define DEFAULT_DEADLINE_S 30
#define HANDSHAKE_TIMEOUT_MS 10000

static wsconn_t *con;
static char **messages;  /* what to send, in order */
static size_t n_messages;
static size_t n_sent, n_received;
static int opened;       /* the opening handshake completed */
static int closing;      /* we sent our close frame */
static int done;         /* the connection is over */
static int close_code = -1; /* from the close_ex callback */
static int failed;

/* -z, --deflate-dedicated: offer permessage-deflate; 0: WSCONN_DEFLATE_OFF. */
static int deflate_mode;
static int deflate_bits = 15; /* --deflate-dedicated BITS */

/* Sends the next message, or starts the closing handshake after the last. */
static void send_next(void)
{
    if (n_sent < n_messages) {
        const char *m = messages[n_sent];
        int rc = wsconn_send_text(con, m, strlen(m));
        if (rc != WSCONN_OK) {
            fprintf(stderr, "client: send: %s\n", wsconn_strerror(rc));
            failed = 1;
            wsconn_close(con, 1011, "send failed");
            closing = 1;
            return;
        }
        n_sent++;
    } else if (!closing) {
        int rc = wsconn_close(con, 1000, NULL);
        if (rc != WSCONN_OK) {
            fprintf(stderr, "client: close: %s\n", wsconn_strerror(rc));
            failed = 1;
        }
        closing = 1;
    }
}

static void on_build(int fd, void *arg)
{
    (void)fd;
    (void)arg;
    opened = 1;
    if (deflate_mode != WSCONN_DEFLATE_OFF) {
        char agreed[256];
        wsconn_extensions(con, agreed, sizeof agreed);
        fprintf(stderr, "extensions: %s\n", agreed);
    }
    send_next();
}

static void on_message(wsconn_t *c, void *arg, int type, const uint8_t *data,
                       size_t len)
{
    (void)c;
    (void)arg;
    if (type == WSCONN_MSG_BINARY) {
        for (size_t i = 0; i < len; i++)
            printf("%02x", data[i]);
        putchar('\n');
    } else {
        fwrite(data, 1, len, stdout);
        putchar('\n');
    }
    fflush(stdout);
    n_received++;
    if (n_received == n_sent)
        send_next(); /* one message in flight at a time */
}

static void on_close_ex(wsconn_t *c, void *arg, int code, const char *reason,
                        size_t reason_len)
{
    (void)arg;
    close_code = code;
    int error = wsconn_close_error(c);
    if (!opened)
        fprintf(stderr, "client: connection or handshake failed (%d %.*s): error %d: %s\n",
                code, (int)reason_len, reason ? reason : "", error, wsconn_strerror(error));
    else if (code != 1000 || !closing)
        fprintf(stderr, "client: connection closed: %d %.*s\n", code,
                (int)reason_len, reason ? reason : "");
    done = 1;
}

static void on_close(int fd, void *arg)
{
    (void)fd;
    (void)arg;
    done = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads stdin to its end as lines (without their newline). */
static int read_lines(void)
{
    char *line = NULL;
    size_t cap = 0, alloc = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        if (n > 0 && line[n - 1] == '\n')
            line[--n] = '\0';
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0';
        if (n_messages == alloc) {
            alloc = alloc ? alloc * 2 : 16;
            char **m = realloc(messages, alloc * sizeof *m);
            if (m == NULL)
                goto oom;
            messages = m;
        }
        if ((messages[n_messages] = strdup(line)) == NULL)
            goto oom;
        n_messages++;
    }
    free(line);
    return 0;
oom:
    free(line);
    fprintf(stderr, "client: out of memory\n");
    return -1;
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [-z] [--deflate-dedicated BITS] [-T SECONDS] [--ca FILE]\n"
            "          ws[s]://HOST[:PORT]/PATH [MESSAGE...]\n"
            "  sends each MESSAGE (or each stdin line) as text, prints the replies\n"
            "  -z          offer permessage-deflate, shared mode (prints what was agreed to stderr)\n"
            "  --deflate-dedicated BITS  offer permessage-deflate with context takeover and\n"
            "              BITS-bit windows (8-15)\n"
            "  -T SECONDS  overall deadline (default %d)\n"
            "  --ca FILE   wss://: trust the CA certificates of FILE (PEM) instead of the system's\n"
            "  --cert FILE --key FILE  wss://: client certificate and key (PEM), for mutual TLS\n",
            prog, DEFAULT_DEADLINE_S);
}

int main(int argc, char **argv)
{
    int deadline_s = DEFAULT_DEADLINE_S, opt;
    const char *ca_file = NULL, *cert_file = NULL, *key_file = NULL;
    static const struct option long_options[] = {
        {"ca", required_argument, NULL, 'C'},
        {"cert", required_argument, NULL, 'E'},
        {"key", required_argument, NULL, 'K'},
        {"deflate-dedicated", required_argument, NULL, 'D'},
        {NULL, 0, NULL, 0},
    };
    while ((opt = getopt_long(argc, argv, "zT:h", long_options, NULL)) != -1) {
        char *end;
        switch (opt) {
        case 'z':
            deflate_mode = WSCONN_DEFLATE_SHARED;
            break;
        case 'D':
            errno = 0;
            deflate_bits = (int)strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || deflate_bits < 8 || deflate_bits > 15) {
                usage(argv[0]);
                return 2;
            }
            deflate_mode = WSCONN_DEFLATE_DEDICATED;
            break;
        case 'C':
            ca_file = optarg;
            break;
        case 'E':
            cert_file = optarg;
            break;
        case 'K':
            key_file = optarg;
            break;
        case 'T':
            errno = 0;
            deadline_s = (int)strtol(optarg, &end, 10);
            if (errno || end == optarg || *end || deadline_s <= 0) {
                usage(argv[0]);
                return 2;
            }
            break;
        default:
            usage(argv[0]);
            return 2;
        }
    }
    if (optind >= argc || (cert_file == NULL) != (key_file == NULL)) {
        usage(argv[0]);
        return 2;
    }
    const char *url = argv[optind];

    int from_stdin = optind + 1 == argc;
    if (from_stdin) {
        if (read_lines() < 0)
            return 1;
    } else {
        messages = argv + optind + 1;
        n_messages = (size_t)(argc - optind - 1);
    }

    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    wsconn_config_t *cfg = NULL;
    wsconn_reactor_t *r = wsconn_reactor_create();
    if (r == NULL) {
        fprintf(stderr, "client: wsconn_reactor_create failed\n");
        goto out;
    }
    con = wsconn_create(r);
    cfg = wsconn_config_new();
    if (con == NULL || cfg == NULL) {
        fprintf(stderr, "client: out of memory\n");
        goto out;
    }
    unsigned handshake_ms = HANDSHAKE_TIMEOUT_MS;
    if ((unsigned)deadline_s * 1000u < handshake_ms)
        handshake_ms = (unsigned)deadline_s * 1000u;
    wsconn_config_set_handshake_timeout(cfg, handshake_ms);
    wsconn_config_set_close_timeout(cfg, 5000);
    if (deflate_mode != WSCONN_DEFLATE_OFF &&
        (wsconn_config_set_deflate(cfg, deflate_mode) != WSCONN_OK ||
         (deflate_mode == WSCONN_DEFLATE_DEDICATED &&
          wsconn_config_set_deflate_window_bits(cfg, deflate_bits, deflate_bits) != WSCONN_OK))) {
        fprintf(stderr, "client: cannot set permessage-deflate\n");
        goto out;
    }
    if (ca_file != NULL) {
        int tls = wsconn_config_set_tls_ca_file(cfg, ca_file);
        if (tls != WSCONN_OK) {
            fprintf(stderr, "client: CA file %s: error %d: %s\n", ca_file, tls, wsconn_strerror(tls));
            goto out;
        }
    }
    if (cert_file != NULL) {
        int tls = wsconn_config_set_tls_client_cert(cfg, cert_file, key_file);
        if (tls != WSCONN_OK) {
            fprintf(stderr, "client: certificate %s, key %s: error %d: %s\n", cert_file, key_file, tls,
                    wsconn_strerror(tls));
            goto out;
        }
    }
    wsconn_set_config(con, cfg);

    wsconn_set_build_func(con, on_build, NULL);
    wsconn_set_message_func(con, on_message, NULL);
    wsconn_set_close_ex_func(con, on_close_ex, NULL);
    wsconn_set_close_func(con, on_close, NULL);

    int rc = wsconn_connect(con, url);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "client: cannot connect to %s: error %d: %s\n", url, rc,
                wsconn_strerror(rc));
        goto out;
    }

    double deadline = now_s() + deadline_s;
    while (!done) {
        double left = deadline - now_s();
        if (left <= 0) {
            fprintf(stderr, "client: no clean close within %d s (%zu of %zu replies)\n",
                    deadline_s, n_received, n_messages);
            goto out;
        }
        int ms = left > 0.1 ? 100 : (int)(left * 1000) + 1;
        rc = wsconn_reactor_dispatch(r, ms);
        if (rc < 0) {
            fprintf(stderr, "client: dispatch: %s\n", wsconn_strerror(rc));
            goto out;
        }
    }

    if (!failed && closing && close_code == 1000 && n_received == n_messages)
        status = 0;
    else if (!failed && opened && close_code == 1000)
        fprintf(stderr, "client: closed after %zu of %zu replies\n", n_received,
                n_messages);
    else if (close_code < 0)
        fprintf(stderr, "client: connection closed without a close code\n");

out:
    if (con != NULL)
        wsconn_release(con);
    wsconn_config_free(cfg);
    if (r != NULL)
        wsconn_reactor_release(r);
    if (from_stdin) {
        for (size_t i = 0; i < n_messages; i++)
            free(messages[i]);
        free(messages);
    }
    return status;
}
