/*
 * autobahn_client.c - the testee client of the Autobahn Testsuite's fuzzing
 * server (wstest -m fuzzingserver), on the wsconn reactor API, client role.
 *
 * The fuzzing server drives a testee client through plain WebSocket
 * connections, one at a time:
 *
 *   1. ws://HOST:PORT/getCaseCount             one text message: the number N
 *   2. ws://HOST:PORT/runCase?case=I&agent=A   for I in 1..=N: echo every
 *                                              message back with its type
 *                                              until the server closes
 *   3. ws://HOST:PORT/updateReports?agent=A    the server writes its reports
 *                                              and closes
 *
 * Everything protocol-related (masking, ping/pong, fragmentation, UTF-8, the
 * closing handshake, failing the connection with 1002/1007/1009,
 * permessage-deflate) is the library's job; this program only echoes.  The
 * limits are raised to 64 MiB so that the 16 MiB cases (9.x) fit.
 *
 * Usage: autobahn_client [-T SECONDS] [-z | --deflate-dedicated BITS]
 *                        [--ca FILE] ws[s]://HOST:PORT [AGENT]
 *   AGENT    the agent name in the reports (default "wsconn")
 *   -T       deadline for each connection (default 120 s)
 *   -z       offer permessage-deflate, shared mode (no context takeover):
 *            for the compression cases (12.x, 13.x)
 *   --deflate-dedicated BITS
 *            offer permessage-deflate with context takeover and BITS-bit
 *            windows (8-15) both ways
 *   --ca     wss://: trust the certificate authorities of this PEM file
 *            (default: the system's store)
 *
 * Exit status: 0 when every case ran and the reports were updated (whatever
 * each case's verdict: the server judges them); 1 when a connection could
 * not be made, the case count is missing, or a connection outlived its
 * deadline; 2 on a usage error.
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

#define DEFAULT_AGENT "wsconn"
#define DEFAULT_DEADLINE_S 120
#define LIMIT_BYTES ((size_t)64 * 1024 * 1024)
#define HANDSHAKE_TIMEOUT_MS 10000
#define CLOSE_TIMEOUT_MS 5000
#define MAX_CASES 100000
#define MAX_URL 2048

/* What one connection does with the messages it receives. */
enum mode {
    MODE_CASE_COUNT, /* read the number of cases */
    MODE_RUN_CASE,   /* echo everything */
    MODE_REPORTS,    /* nothing: wait for the close */
};

/* The state of the connection being run (one at a time). */
struct run {
    enum mode mode;
    int opened;      /* the opening handshake completed */
    int done;        /* the close callbacks ran */
    int close_code;  /* from the close_ex callback */
    char reason[128];
    long case_count; /* MODE_CASE_COUNT: the number received, or -1 */
    size_t messages; /* messages received */
    size_t send_errors;
};

static void on_build(int fd, void *arg)
{
    (void)fd;
    struct run *run = arg;
    run->opened = 1;
}

/* Parses the case count: decimal digits only, 0..MAX_CASES. */
static long parse_count(const uint8_t *data, size_t len)
{
    long n = 0;
    if (len == 0 || len > 6)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (data[i] < '0' || data[i] > '9')
            return -1;
        n = n * 10 + (data[i] - '0');
    }
    return n <= MAX_CASES ? n : -1;
}

static void on_message(wsconn_t *con, void *arg, int type, const uint8_t *data,
                       size_t len)
{
    struct run *run = arg;
    run->messages++;
    switch (run->mode) {
    case MODE_CASE_COUNT:
        if (run->messages == 1 && type == WSCONN_MSG_TEXT)
            run->case_count = parse_count(data, len);
        else
            run->case_count = -1;
        break;
    case MODE_RUN_CASE: {
        int rc = type == WSCONN_MSG_TEXT
                     ? wsconn_send_text(con, (const char *)data, len)
                     : wsconn_send_binary(con, data, len);
        /* WSCONN_ERR_CLOSED: a close is under way, the echo is moot.  Any
         * other failure is noted (the server's verdict will show it). */
        if (rc != WSCONN_OK && rc != WSCONN_ERR_CLOSED) {
            run->send_errors++;
            fprintf(stderr, "autobahn_client: echo of %zu bytes: %s\n", len,
                    wsconn_strerror(rc));
        }
        break;
    }
    case MODE_REPORTS:
        break;
    }
}

static void on_close_ex(wsconn_t *con, void *arg, int code, const char *reason,
                        size_t reason_len)
{
    (void)con;
    struct run *run = arg;
    run->close_code = code;
    snprintf(run->reason, sizeof run->reason, "%.*s",
             (int)(reason_len < 100 ? reason_len : 100), reason ? reason : "");
}

static void on_close(int fd, void *arg)
{
    (void)fd;
    struct run *run = arg;
    run->done = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * Runs one connection to `url` in `run->mode` until it closes.  Returns 0
 * when the opening handshake completed and the connection then closed (with
 * whatever code), -1 (after printing why) when it could not be made or did
 * not end within the deadline.
 */
static int run_connection(wsconn_reactor_t *r, const wsconn_config_t *cfg,
                          const char *url, struct run *run, int deadline_s)
{
    run->opened = run->done = 0;
    run->close_code = -1;
    run->reason[0] = '\0';
    run->case_count = -1;
    run->messages = run->send_errors = 0;

    wsconn_t *con = wsconn_create(r);
    if (con == NULL) {
        fprintf(stderr, "autobahn_client: wsconn_create failed\n");
        return -1;
    }
    int status = -1;
    int rc = wsconn_set_config(con, cfg);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "autobahn_client: set_config: %s\n", wsconn_strerror(rc));
        goto out;
    }
    wsconn_set_build_func(con, on_build, run);
    wsconn_set_message_func(con, on_message, run);
    wsconn_set_close_ex_func(con, on_close_ex, run);
    wsconn_set_close_func(con, on_close, run);

    rc = wsconn_connect(con, url);
    if (rc != WSCONN_OK) {
        fprintf(stderr, "autobahn_client: cannot connect to %s: %s\n", url,
                wsconn_strerror(rc));
        goto out;
    }

    double deadline = now_s() + deadline_s;
    while (!run->done) {
        double left = deadline - now_s();
        if (left <= 0) {
            fprintf(stderr, "autobahn_client: %s still open after %d s\n", url,
                    deadline_s);
            goto out;
        }
        rc = wsconn_reactor_dispatch(r, left > 0.1 ? 100 : (int)(left * 1000) + 1);
        if (rc < 0) {
            fprintf(stderr, "autobahn_client: dispatch: %s\n", wsconn_strerror(rc));
            goto out;
        }
    }
    if (!run->opened) {
        fprintf(stderr,
                "autobahn_client: cannot connect to %s: connection or opening "
                "handshake failed (%d %s)\n",
                url, run->close_code, run->reason);
        goto out;
    }
    status = 0;
out:
    wsconn_release(con);
    return status;
}

static void usage(const char *prog)
{
    fprintf(stderr,
            "usage: %s [-T SECONDS] [-z | --deflate-dedicated BITS] [--ca FILE]\n"
            "          ws[s]://HOST:PORT [AGENT]\n"
            "  runs every case of an Autobahn fuzzing server as its testee client\n"
            "  AGENT       agent name for the reports (default %s)\n"
            "  -T SECONDS  deadline for each connection (default %d)\n"
            "  -z          offer permessage-deflate, shared mode (no context takeover)\n"
            "  --deflate-dedicated BITS\n"
            "              offer permessage-deflate with context takeover, BITS-bit\n"
            "              windows (8-15)\n"
            "  --ca FILE   wss://: trust the CAs of this PEM file\n",
            prog, DEFAULT_AGENT, DEFAULT_DEADLINE_S);
}

/* Parses a decimal int in [min, max]; returns 0 on success. */
static int int_arg(const char *text, int min, int max, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max)
        return -1;
    *out = (int)v;
    return 0;
}

/* A URL-safe agent name: letters, digits and -._~ only. */
static int agent_ok(const char *agent)
{
    if (*agent == '\0' || strlen(agent) > 100)
        return 0;
    for (const char *p = agent; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || strchr("-._~", *p)))
            return 0;
    return 1;
}

int main(int argc, char **argv)
{
    int deadline_s = DEFAULT_DEADLINE_S, opt;
    int deflate_mode = WSCONN_DEFLATE_OFF, deflate_bits = 15;
    const char *ca_file = NULL;
    static const struct option long_options[] = {
        {"deflate-dedicated", required_argument, NULL, 'D'},
        {"ca", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    while ((opt = getopt_long(argc, argv, "T:zh", long_options, NULL)) != -1) {
        switch (opt) {
        case 'T':
            if (int_arg(optarg, 1, 86400, &deadline_s) != 0) {
                usage(argv[0]);
                return 2;
            }
            break;
        case 'z':
            deflate_mode = WSCONN_DEFLATE_SHARED;
            break;
        case 'D':
            deflate_mode = WSCONN_DEFLATE_DEDICATED;
            if (int_arg(optarg, 8, 15, &deflate_bits) != 0) {
                fprintf(stderr, "autobahn_client: --deflate-dedicated %s: window bits are 8-15\n",
                        optarg);
                return 2;
            }
            break;
        case 'C':
            ca_file = optarg;
            break;
        default:
            usage(argv[0]);
            return 2;
        }
    }
    int nargs = argc - optind;
    if (nargs < 1 || nargs > 2) {
        usage(argv[0]);
        return 2;
    }
    const char *base_arg = argv[optind];
    const char *agent = nargs == 2 ? argv[optind + 1] : DEFAULT_AGENT;
    size_t scheme_len = strncmp(base_arg, "ws://", 5) == 0    ? 5
                        : strncmp(base_arg, "wss://", 6) == 0 ? 6
                                                              : 0;
    if (scheme_len == 0) {
        fprintf(stderr, "autobahn_client: %s: expected a ws:// or wss:// URL\n", base_arg);
        return 2;
    }
    if (!agent_ok(agent)) {
        fprintf(stderr, "autobahn_client: agent name %s: use letters, digits, -._~\n",
                agent);
        return 2;
    }
    /* The base URL without trailing slashes. */
    char base[MAX_URL / 2];
    size_t blen = strlen(base_arg);
    while (blen > scheme_len && base_arg[blen - 1] == '/')
        blen--;
    if (blen >= sizeof base) {
        fprintf(stderr, "autobahn_client: URL too long\n");
        return 2;
    }
    memcpy(base, base_arg, blen);
    base[blen] = '\0';

    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    wsconn_config_t *cfg = wsconn_config_new();
    wsconn_reactor_t *r = wsconn_reactor_create();
    if (cfg == NULL || r == NULL) {
        fprintf(stderr, "autobahn_client: out of memory\n");
        goto out;
    }
    if (wsconn_config_set_max_frame_size(cfg, LIMIT_BYTES) != WSCONN_OK ||
        wsconn_config_set_max_message_size(cfg, LIMIT_BYTES) != WSCONN_OK ||
        /* room for an echo of the largest message, and then some */
        wsconn_config_set_max_output(cfg, 2 * LIMIT_BYTES) != WSCONN_OK ||
        wsconn_config_set_handshake_timeout(cfg, HANDSHAKE_TIMEOUT_MS) != WSCONN_OK ||
        wsconn_config_set_close_timeout(cfg, CLOSE_TIMEOUT_MS) != WSCONN_OK) {
        fprintf(stderr, "autobahn_client: cannot configure the limits\n");
        goto out;
    }
    if (deflate_mode != WSCONN_DEFLATE_OFF) {
        int rc = wsconn_config_set_deflate(cfg, deflate_mode);
        if (rc == WSCONN_OK && deflate_mode == WSCONN_DEFLATE_DEDICATED)
            rc = wsconn_config_set_deflate_window_bits(cfg, deflate_bits, deflate_bits);
        if (rc != WSCONN_OK) {
            fprintf(stderr, "autobahn_client: permessage-deflate: %s\n", wsconn_strerror(rc));
            goto out;
        }
    }
    if (ca_file != NULL) {
        int rc = wsconn_config_set_tls_ca_file(cfg, ca_file);
        if (rc != WSCONN_OK) {
            fprintf(stderr, "autobahn_client: CA file %s: %s\n", ca_file, wsconn_strerror(rc));
            goto out;
        }
    }

    char url[MAX_URL];
    struct run run;

    /* 1. The number of cases. */
    snprintf(url, sizeof url, "%s/getCaseCount", base);
    run.mode = MODE_CASE_COUNT;
    if (run_connection(r, cfg, url, &run, deadline_s) < 0)
        goto out;
    long n = run.case_count;
    if (n < 0) {
        fprintf(stderr, "autobahn_client: %s sent no case count (%zu messages)\n",
                url, run.messages);
        goto out;
    }
    printf("autobahn_client: %ld cases\n", n);
    fflush(stdout);

    /* 2. Each case, one at a time. */
    for (long i = 1; i <= n; i++) {
        snprintf(url, sizeof url, "%s/runCase?case=%ld&agent=%s", base, i, agent);
        run.mode = MODE_RUN_CASE;
        double t0 = now_s();
        if (run_connection(r, cfg, url, &run, deadline_s) < 0)
            goto out;
        printf("case %ld/%ld: %zu messages echoed, closed %d%s%s (%.3f s)\n", i, n,
               run.messages, run.close_code, run.reason[0] ? " " : "", run.reason,
               now_s() - t0);
        fflush(stdout);
    }

    /* 3. The reports. */
    snprintf(url, sizeof url, "%s/updateReports?agent=%s", base, agent);
    run.mode = MODE_REPORTS;
    if (run_connection(r, cfg, url, &run, deadline_s) < 0)
        goto out;
    printf("autobahn_client: reports updated (closed %d)\n", run.close_code);
    status = 0;

out:
    if (r != NULL)
        wsconn_reactor_release(r);
    wsconn_config_free(cfg);
    return status;
}
