/*
 * lws_echo.c - WebSocket echo server on libwebsockets, a peer for wsbench.
 *
 * Usage: lws_echo [--tls-cert FILE --tls-key FILE] PORT
 *        (binds 127.0.0.1; 0 is not supported by lws here). With the PEM
 *        certificate chain and key it serves wss:// (lws on OpenSSL), the same
 *        echo over TLS.
 * Build: cc -O2 -o lws_echo lws_echo.c $(pkg-config --cflags --libs libwebsockets)
 *        (Debian: apt-get install libwebsockets-dev)
 *
 * Shaped like lws's minimal-ws-server-echo: one service thread, one protocol;
 * LWS_CALLBACK_RECEIVE gathers a message (lws hands over large frames in
 * pieces), queues it, and asks for a writeable callback; the writeable callback
 * writes queued messages with lws_write() while lws_send_pipe_choked() says the
 * socket takes more (lws buffers a partial write itself). Every message is
 * echoed whole, with its type. UTF-8 of text messages is validated by lws
 * (LWS_SERVER_OPTION_VALIDATE_UTF8), as every other server in the comparison
 * does. SIGINT / SIGTERM stop it.
 */

#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A queued echo: LWS_PRE bytes of room for lws, then the payload. */
struct msg {
    struct msg *next;
    size_t len;
    int binary;
    unsigned char buf[]; /* LWS_PRE + len */
};

/* Per connection (lws allocates it, per_session_data_size). */
struct pss {
    struct msg *head, *tail;
    unsigned char *rx; /* the message being received */
    size_t rx_len, rx_cap;
    int rx_binary;
};

static volatile sig_atomic_t interrupted;
static struct lws_context *context;

static void drop_all(struct pss *pss)
{
    while (pss->head) {
        struct msg *m = pss->head;
        pss->head = m->next;
        free(m);
    }
    pss->tail = NULL;
    free(pss->rx);
    pss->rx = NULL;
    pss->rx_len = pss->rx_cap = 0;
}

static int callback_echo(struct lws *wsi, enum lws_callback_reasons reason, void *user,
                         void *in, size_t len)
{
    struct pss *pss = user;

    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(pss, 0, sizeof *pss);
        break;

    case LWS_CALLBACK_RECEIVE:
        if (lws_is_first_fragment(wsi)) {
            pss->rx_len = 0;
            pss->rx_binary = lws_frame_is_binary(wsi);
        }
        if (pss->rx_len + len > pss->rx_cap) {
            size_t cap = pss->rx_cap ? pss->rx_cap : 256;
            while (cap < pss->rx_len + len)
                cap *= 2;
            unsigned char *p = realloc(pss->rx, cap);
            if (!p)
                return -1;
            pss->rx = p;
            pss->rx_cap = cap;
        }
        memcpy(pss->rx + pss->rx_len, in, len);
        pss->rx_len += len;
        if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi)) {
            struct msg *m = malloc(sizeof *m + LWS_PRE + pss->rx_len);
            if (!m)
                return -1;
            m->next = NULL;
            m->len = pss->rx_len;
            m->binary = pss->rx_binary;
            memcpy(m->buf + LWS_PRE, pss->rx, pss->rx_len);
            if (pss->tail)
                pss->tail->next = m;
            else
                pss->head = m;
            pss->tail = m;
            pss->rx_len = 0;
            /* Give back a big receive buffer (as a server keeping idle
             * connections small would). */
            if (pss->rx_cap > 64 * 1024) {
                free(pss->rx);
                pss->rx = NULL;
                pss->rx_cap = 0;
            }
            lws_callback_on_writable(wsi);
        }
        break;

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        int budget = 64;
        while (pss->head && budget-- > 0) {
            struct msg *m = pss->head;
            int n = lws_write(wsi, m->buf + LWS_PRE, m->len,
                              m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT);
            if (n < 0 || (size_t)n < m->len)
                return -1;
            pss->head = m->next;
            if (!pss->head)
                pss->tail = NULL;
            free(m);
            if (lws_send_pipe_choked(wsi))
                break;
        }
        if (pss->head)
            lws_callback_on_writable(wsi);
        break;
    }

    case LWS_CALLBACK_CLOSED:
        drop_all(pss);
        break;

    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"echo", callback_echo, sizeof(struct pss), 0, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
    if (context)
        lws_cancel_service(context);
}

static int usage(const char *prog)
{
    fprintf(stderr, "usage: %s [--tls-cert FILE --tls-key FILE] PORT\n", prog);
    return 2;
}

int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *port_arg = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tls-cert") && i + 1 < argc)
            cert = argv[++i];
        else if (!strcmp(argv[i], "--tls-key") && i + 1 < argc)
            key = argv[++i];
        else if (!port_arg)
            port_arg = argv[i];
        else
            return usage(argv[0]);
    }
    char *end = NULL;
    long port = port_arg ? strtol(port_arg, &end, 10) : -1;
    if (!port_arg || !end || *end || port <= 0 || port > 65535 || !cert != !key)
        return usage(argv[0]);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);

    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = (int)port;
    info.iface = "127.0.0.1";
    info.protocols = protocols;
    info.options = LWS_SERVER_OPTION_VALIDATE_UTF8 | LWS_SERVER_OPTION_DISABLE_IPV6;
    if (cert) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = cert;
        info.ssl_private_key_filepath = key;
    }
    /* Any URL path is the echo protocol (wsbench sends no subprotocol). */
    context = lws_create_context(&info);
    if (!context) {
        fprintf(stderr, "lws_echo: lws_create_context failed\n");
        return 1;
    }
    printf("lws_echo listening on 127.0.0.1:%ld%s\n", port, cert ? " (TLS)" : "");
    fflush(stdout);
    while (!interrupted && lws_service(context, 0) >= 0)
        ;
    lws_context_destroy(context);
    return 0;
}
