/*
 * client.c - a WebSocket client on the wsconn reactor API.
 *
 * Connects to a ws:// or wss:// URL, sends each MESSAGE argument as a text message
 * (or, without arguments, each line of stdin), printing every reply on its own
 * line.  After the last reply it closes with 1000 and exits 0 when the
 * server's close frame (code 1000) arrives.
 *
 *   client ws://127.0.0.1:9998/echo hello world
 *   printf 'one\ntwo\n' | client ws://127.0.0.1:9998/echo
 *   client --ca ca.pem wss://localhost:9443/echo hello
 *   client -H 'Authorization: Bearer t0k3n' --proxy socks5h://127.0.0.1:1080 wss://example.com/
 *   some_producer | client --reconnect --proxy-env ws://server:9998/feed
 *
 * wss:// verifies the server against the system's trust store, or against
 * the CA certificates of --ca FILE.  ws://user:password@host/ sends Basic
 * authorization.  A failure prints the close error's code and text (e.g.
 * "error -20: TLS: ... unknown authority"); a server refusing the upgrade
 * prints its status ("handshake refused: 401"), a proxy refusing the tunnel
 * its own ("proxy refused: 407").
 *
 * Without --reconnect, one message is in flight at a time and stdin is read
 * to its end before connecting (messages are sent only once all of them are
 * known).  With --reconnect, stdin is read line by line as lines come; each
 * line is sent as soon as the connection is open, and kept until its echo
 * arrives: when the connection drops, the library connects again (with
 * backoff) and the lines not yet echoed are sent again, in order, followed
 * by those read meanwhile.  (This assumes an echo server: each reply
 * acknowledges the oldest line not yet echoed.)  Binary replies are
 * printed as hex.
 *
 * Exit status: 0 on a clean close with 1000 after every reply arrived;
 * 1 on connect or handshake failure (without --reconnect), an unclean or
 * unexpected close, or when the whole exchange takes longer than the
 * deadline (-T, default 30 s); 2 on a usage error.
 *
 * Usage: client [-z] [--deflate-dedicated BITS] [-T SECONDS] [--ca FILE]
 *               [--cert FILE --key FILE] [-H 'Name: value']... [--proxy URL]
 *               [--proxy-env] [--max-redirects N] [--reconnect]
 *               ws[s]://HOST[:PORT]/PATH [MESSAGE...]
 *   -z            offer permessage-deflate in the shared mode (no context
 *                 takeover); what the server agreed to is printed to stderr
 *                 ("extensions: ...") once connected
 *   --deflate-dedicated BITS
 *                 offer permessage-deflate with context takeover and BITS-bit
 *                 windows (8-15) both ways, printed the same way
 *   --cert/--key  client certificate chain and key (PEM), for servers that ask
 *   -H            a header line of the opening handshake (repeatable)
 *   --proxy URL   through http://, https://, socks5:// or socks5h:// proxy URL
 *                 ([user:password@]host:port)
 *   --proxy-env   the proxies of the environment, with curl's rules
 *                 (http_proxy, https_proxy, all_proxy, no_proxy)
 *   --max-redirects N  follow up to N redirects (default 0)
 *   --reconnect   connect again (100 ms to 2 s backoff) whenever the
 *                 connection drops, until stdin ends and every line is echoed
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
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
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 2000
#define MAX_HEADERS 64

static wsconn_t *con;
static wsconn_reactor_t *reactor;
static char **messages;  /* what to send, in order */
static size_t n_messages, cap_messages;
static size_t n_sent;     /* sent on the current connection (or before) */
static size_t n_received; /* echoes received: the lines acknowledged */
static int opened;        /* the opening handshake completed (at least once) */
static int connected;     /* the connection is open now */
static int closing;       /* we sent our close frame */
static int done;          /* the connection is over */
static int close_code = -1; /* from the close_ex callback */
static int failed;

/* --reconnect: lines come from stdin while the connection runs. */
static int reconnecting;
static int input_done;    /* stdin ended (or messages came as arguments) */
static char *partial;     /* a line read in part */
static size_t partial_len;

/* -z, --deflate-dedicated: offer permessage-deflate; 0: WSCONN_DEFLATE_OFF. */
static int deflate_mode;
static int deflate_bits = 15; /* --deflate-dedicated BITS */

static void oom(void)
{
    fprintf(stderr, "client: out of memory\n");
    exit(1);
}

/* Keeps a line to send (without its newline). */
static void add_message(const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (n_messages == cap_messages) {
        cap_messages = cap_messages ? cap_messages * 2 : 16;
        char **m = realloc(messages, cap_messages * sizeof *m);
        if (m == NULL)
            oom();
        messages = m;
    }
    if ((messages[n_messages] = strndup(line, len)) == NULL)
        oom();
    n_messages++;
}

/* Starts the closing handshake: every line is out and echoed. */
static void close_now(void)
{
    if (closing)
        return;
    int rc = wsconn_close(con, 1000, NULL);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "client: close: %s\n", wsconn_strerror(rc));
        failed = 1;
    }
    closing = 1;
}

/* Sends one message; on a refusal other than "full", gives up. */
static int send_one(const char *m)
{
    int rc = wsconn_send_text(con, m, strlen(m));
    if (rc == WSCONN_OK || rc == WSCONN_ERR_FULL)
        return rc;
    fprintf(stderr, "client: send: %s\n", wsconn_strerror(rc));
    failed = 1;
    wsconn_close(con, 1011, "send failed");
    closing = 1;
    return rc;
}

/* Without --reconnect: the next message, or the closing handshake after the last. */
static void send_next(void)
{
    if (n_sent < n_messages) {
        if (send_one(messages[n_sent]) == WSCONN_OK)
            n_sent++;
    } else {
        close_now();
    }
}

/* With --reconnect: every line not sent on this connection yet (until the
 * output is full: the drain callback resumes), then the close once all are
 * echoed and stdin ended. */
static void send_pending(void)
{
    while (connected && !closing && n_sent < n_messages) {
        if (send_one(messages[n_sent]) != WSCONN_OK)
            return;
        n_sent++;
    }
    if (connected && input_done && n_received == n_messages)
        close_now();
}

static void on_drain(wsconn_t *c, void *arg)
{
    (void)c;
    (void)arg;
    if (reconnecting)
        send_pending();
}

static void on_build(int fd, void *arg)
{
    (void)fd;
    (void)arg;
    opened = connected = 1;
    if (deflate_mode != WSCONN_DEFLATE_OFF) {
        char agreed[256];
        wsconn_extensions(con, agreed, sizeof agreed);
        fprintf(stderr, "extensions: %s\n", agreed);
    }
    if (reconnecting) {
        n_sent = n_received; /* what was not echoed goes again */
        send_pending();
    } else {
        send_next();
    }
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
    if (n_received < n_messages)
        n_received++;
    if (reconnecting)
        send_pending();
    else if (n_received == n_sent)
        send_next(); /* one message in flight at a time */
}

/* Why the connection (or the attempt) failed, told the way a user reads it. */
static void report_failure(wsconn_t *c, int code, const char *reason, size_t reason_len)
{
    int error = wsconn_close_error(c);
    if (error == WSCONN_ERR_HANDSHAKE_REFUSED)
        fprintf(stderr, "client: handshake refused: %d\n", wsconn_handshake_status(c));
    else if (error == WSCONN_ERR_PROXY_REFUSED || error == WSCONN_ERR_PROXY_AUTH)
        fprintf(stderr, "client: proxy refused: %d\n", wsconn_proxy_status(c));
    else
        fprintf(stderr, "client: connection or handshake failed (%d %.*s): error %d: %s\n",
                code, (int)reason_len, reason ? reason : "", error, wsconn_strerror(error));
}

static void on_close_ex(wsconn_t *c, void *arg, int code, const char *reason,
                        size_t reason_len)
{
    (void)arg;
    int was_connected = connected;
    connected = 0;
    close_code = code;
    int64_t retry = wsconn_reconnect_delay(c);
    if (!was_connected && !closing)
        report_failure(c, code, reason, reason_len);
    else if (code != 1000 || !closing)
        fprintf(stderr, "client: connection closed: %d %.*s\n", code,
                (int)reason_len, reason ? reason : "");
    if (retry >= 0) {
        fprintf(stderr, "client: reconnecting in %" PRId64 " ms (%zu of %zu lines echoed)\n",
                retry, n_received, n_messages);
        return;
    }
    done = 1;
}

static void on_close(int fd, void *arg)
{
    (void)fd;
    (void)arg;
    if (wsconn_reconnect_delay(con) < 0)
        done = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Reads stdin to its end as lines (without their newline). */
static void read_lines(void)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) >= 0)
        add_message(line, n > 0 && line[n - 1] == '\n' ? (size_t)n - 1 : (size_t)n);
    free(line);
}

/* --reconnect: stdin is readable; its complete lines are queued and sent. */
static void on_stdin(wsconn_reactor_t *r, int fd, int events, void *arg)
{
    (void)events;
    (void)arg;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (partial_len > 0)
            add_message(partial, partial_len);
        partial_len = 0;
        input_done = 1;
        wsconn_reactor_unwatch(r, fd);
        send_pending();
        return;
    }
    size_t start = 0;
    for (size_t i = 0; i < (size_t)n; i++) {
        if (buf[i] != '\n')
            continue;
        if (partial_len > 0) {
            char *joined = realloc(partial, partial_len + (i - start));
            if (joined == NULL)
                oom();
            memcpy(joined + partial_len, buf + start, i - start);
            add_message(joined, partial_len + (i - start));
            partial = joined;
            partial_len = 0;
        } else {
            add_message(buf + start, i - start);
        }
        start = i + 1;
    }
    if (start < (size_t)n) {
        char *grown = realloc(partial, partial_len + ((size_t)n - start));
        if (grown == NULL)
            oom();
        memcpy(grown + partial_len, buf + start, (size_t)n - start);
        partial = grown;
        partial_len += (size_t)n - start;
    }
    send_pending();
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [-z] [--deflate-dedicated BITS] [-T SECONDS] [--ca FILE]\n"
            "          [--cert FILE --key FILE] [-H 'Name: value']... [--proxy URL] [--proxy-env]\n"
            "          [--max-redirects N] [--reconnect] ws[s]://HOST[:PORT]/PATH [MESSAGE...]\n"
            "  sends each MESSAGE (or each stdin line) as text, prints the replies\n"
            "  -z          offer permessage-deflate, shared mode (prints what was agreed to stderr)\n"
            "  --deflate-dedicated BITS  offer permessage-deflate with context takeover and\n"
            "              BITS-bit windows (8-15)\n"
            "  -T SECONDS  overall deadline (default %d)\n"
            "  --ca FILE   wss://: trust the CA certificates of FILE (PEM) instead of the system's\n"
            "  --cert FILE --key FILE  wss://: client certificate and key (PEM), for mutual TLS\n"
            "  -H 'Name: value'  a header line of the opening handshake (repeatable)\n"
            "  --proxy URL through this proxy: http://, https://, socks5://, socks5h://\n"
            "              ([user:password@]host:port)\n"
            "  --proxy-env the proxies of the environment (http_proxy, https_proxy, all_proxy,\n"
            "              no_proxy: curl's rules)\n"
            "  --max-redirects N  follow up to N redirects (default 0)\n"
            "  --reconnect connect again whenever the connection drops; stdin lines are sent\n"
            "              as they come, and again after a reconnection until echoed\n",
            prog, DEFAULT_DEADLINE_S);
}

/* Parses a non-negative integer option; -1 if it is not one. */
static long number(const char *text)
{
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    return errno || end == text || *end || value < 0 ? -1 : value;
}

int main(int argc, char **argv)
{
    int deadline_s = DEFAULT_DEADLINE_S, opt, proxy_env = 0;
    long max_redirects = 0;
    const char *ca_file = NULL, *cert_file = NULL, *key_file = NULL, *proxy = NULL;
    const char *headers[MAX_HEADERS];
    size_t n_headers = 0;
    static const struct option long_options[] = {
        {"ca", required_argument, NULL, 'C'},
        {"cert", required_argument, NULL, 'E'},
        {"key", required_argument, NULL, 'K'},
        {"deflate-dedicated", required_argument, NULL, 'D'},
        {"proxy", required_argument, NULL, 'P'},
        {"proxy-env", no_argument, NULL, 'V'},
        {"max-redirects", required_argument, NULL, 'M'},
        {"reconnect", no_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    while ((opt = getopt_long(argc, argv, "zT:H:h", long_options, NULL)) != -1) {
        switch (opt) {
        case 'z':
            deflate_mode = WSCONN_DEFLATE_SHARED;
            break;
        case 'D':
            deflate_bits = (int)number(optarg);
            if (deflate_bits < 8 || deflate_bits > 15) {
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
        case 'H':
            if (n_headers == MAX_HEADERS || strchr(optarg, ':') == NULL) {
                usage(argv[0]);
                return 2;
            }
            headers[n_headers++] = optarg;
            break;
        case 'P':
            proxy = optarg;
            break;
        case 'V':
            proxy_env = 1;
            break;
        case 'M':
            max_redirects = number(optarg);
            if (max_redirects < 0) {
                usage(argv[0]);
                return 2;
            }
            break;
        case 'R':
            reconnecting = 1;
            break;
        case 'T':
            deadline_s = (int)number(optarg);
            if (deadline_s <= 0) {
                usage(argv[0]);
                return 2;
            }
            break;
        default:
            usage(argv[0]);
            return 2;
        }
    }
    if (optind >= argc || (cert_file == NULL) != (key_file == NULL) || (proxy && proxy_env)) {
        usage(argv[0]);
        return 2;
    }
    const char *url = argv[optind];

    int from_stdin = optind + 1 == argc;
    if (!from_stdin) {
        for (int i = optind + 1; i < argc; i++)
            add_message(argv[i], strlen(argv[i]));
        input_done = 1;
    } else if (!reconnecting) {
        read_lines();
        input_done = 1;
    }

    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    wsconn_config_t *cfg = NULL;
    reactor = wsconn_reactor_create();
    if (reactor == NULL) {
        fprintf(stderr, "client: wsconn_reactor_create failed\n");
        goto out;
    }
    con = wsconn_create(reactor);
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
    for (size_t i = 0; i < n_headers; i++) {
        /* "Name: value": the value without the blanks after the colon. */
        const char *colon = strchr(headers[i], ':');
        char *name = strndup(headers[i], (size_t)(colon - headers[i]));
        const char *value = colon + 1 + strspn(colon + 1, " \t");
        int rc = name == NULL ? WSCONN_ERR_NULL : wsconn_config_add_header(cfg, name, value);
        free(name);
        if (rc != WSCONN_OK) {
            fprintf(stderr, "client: header '%s': error %d: %s\n", headers[i], rc, wsconn_strerror(rc));
            goto out;
        }
    }
    int rc = WSCONN_OK;
    if (proxy != NULL)
        rc = wsconn_config_set_proxy(cfg, proxy);
    else if (proxy_env)
        rc = wsconn_config_set_proxy_from_env(cfg);
    if (rc == WSCONN_OK)
        rc = wsconn_config_set_max_redirects(cfg, (uint32_t)max_redirects);
    if (rc == WSCONN_OK && reconnecting)
        rc = wsconn_config_set_reconnect(cfg, RECONNECT_MIN_MS, RECONNECT_MAX_MS);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "client: proxy, redirects or reconnection: error %d: %s\n", rc, wsconn_strerror(rc));
        goto out;
    }
    wsconn_set_config(con, cfg);

    wsconn_set_build_func(con, on_build, NULL);
    wsconn_set_message_func(con, on_message, NULL);
    wsconn_set_close_ex_func(con, on_close_ex, NULL);
    wsconn_set_close_func(con, on_close, NULL);
    wsconn_set_drain_func(con, on_drain, NULL);

    if (reconnecting && !input_done &&
        wsconn_reactor_watch(reactor, STDIN_FILENO, WSCONN_WATCH_READ, on_stdin, NULL) != WSCONN_OK) {
        /* Not pollable (a regular file): it is all there already. */
        read_lines();
        input_done = 1;
    }

    rc = wsconn_connect(con, url);
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
        rc = wsconn_reactor_dispatch(reactor, ms);
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
    if (reactor != NULL)
        wsconn_reactor_release(reactor);
    for (size_t i = 0; i < n_messages; i++)
        free(messages[i]);
    free(messages);
    free(partial);
    return status;
}
