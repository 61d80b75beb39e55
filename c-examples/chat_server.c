/*
 * chat_server.c - chat rooms on wsconn's publish/subscribe, optionally
 * relayed between several servers ("nodes") through Redis.
 *
 *   chat_server [-t N] [-v] [--redis HOST:PORT] [--allow-origin ORIGIN]... [--auth-token TOKEN]
 *               [--drain-ms MS] [port]
 *
 * A client connects to ws://HOST:PORT/room/NAME; each text message it sends
 * is published to topic NAME and reaches everyone in the room, itself
 * included, in the order each member sent them.
 *
 *   -t N             N threads, one reactor each, sharing the port
 *                    (SO_REUSEPORT) and their topics
 *                    (wsconn_reactor_share_topics): a room spans threads.
 *   --redis H:P      also relay through Redis pub/sub: a message is published
 *                    to the Redis channel "chat:NAME" as "NODE-ID MESSAGE";
 *                    every node subscribes to "chat:*" and publishes what
 *                    other nodes sent to its local members. A node ignores its
 *                    own messages (it delivered them locally already), so each
 *                    member gets each message once. While Redis is down, local
 *                    rooms keep working (messages are not relayed then), and
 *                    the node reconnects with backoff (100 ms doubling to 2 s).
 *   -v               log connections and Redis events to stderr, and the
 *                    library's log lines (INFO and above).
 *   --drain-ms MS    SIGTERM/SIGINT drain every reactor (each on its own
 *                    thread): no more connections, handshakes in progress
 *                    refused (503), members closed with 1001; exit 0 once
 *                    all left, or after MS (default 5000) with the rest
 *                    cut. A second signal cuts at once.
 *   port             default 9997; 0 picks a free one. A listening socket
 *                    handed over as fd 3 (systemd's LISTEN_FDS and
 *                    LISTEN_PID) is used instead.
 *
 * GET /metrics answers the counters of every reactor, summed, in
 * Prometheus' text format (ops.h, shared with echo_server.c).
 *
 * The Redis connections (hiredis, asynchronous) run on the first reactor
 * through hiredis_wsconn.h, an adapter onto wsconn_reactor_watch; other
 * threads hand messages to it with wsconn_reactor_defer. Prints
 * "chat_server listening on 127.0.0.1:PORT" once it accepts connections, and
 * "redis subscribed" each time the relay is (re)established.
 */
#include "wsconn.h"
#include "auth.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "hiredis_wsconn.h"
#include "ops.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS OPS_MAX_THREADS
#define MAX_ROOM 100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000

static int verbose;
static int threads = 1;
static wsconn_reactor_t *reactors[MAX_THREADS];
static _Thread_local int thread_id;

#define LOG(...)                                                               \
    do {                                                                       \
        if (verbose)                                                           \
            fprintf(stderr, __VA_ARGS__);                                      \
    } while (0)

/* ------------------------------------------------------------------------ */
/* The Redis relay: on reactors[0]'s thread only.                           */

static const char *redis_host; /* NULL: no relay */
static int redis_port;
static char node_id[17];
static redisAsyncContext *redis_pub; /* PUBLISH */
static redisAsyncContext *redis_sub; /* PSUBSCRIBE chat:* */
static wsconn_timer_t *redis_timer;  /* reconnects */
static int backoff_ms = BACKOFF_MIN_MS;

static void redis_connect(void);

static void redis_retry_later(void)
{
    if (ops_signals > 0 || wsconn_timer_start(redis_timer, (uint64_t)backoff_ms, 0) != WSCONN_OK)
        return;
    LOG("chat_server: redis: retry in %d ms\n", backoff_ms);
    backoff_ms = backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff_ms * 2;
}

static void on_redis_timer(wsconn_timer_t *timer, void *arg)
{
    (void)timer;
    (void)arg;
    redis_connect();
}

/* hiredis frees a context after these report its end. */
static void on_redis_connect(const redisAsyncContext *ac, int status)
{
    if (status == REDIS_OK) {
        LOG("chat_server: redis: connected (%s)\n", ac == redis_pub ? "publish" : "subscribe");
        return;
    }
    LOG("chat_server: redis: cannot connect: %s\n", ac->errstr);
    if (ac == redis_pub)
        redis_pub = NULL;
    if (ac == redis_sub)
        redis_sub = NULL;
    redis_retry_later();
}

static void on_redis_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    if (ac == redis_pub)
        redis_pub = NULL;
    if (ac == redis_sub) {
        redis_sub = NULL;
        printf("redis down\n");
        fflush(stdout);
    }
    LOG("chat_server: redis: disconnected: %s\n", ac->errstr);
    redis_retry_later();
}

/* A message another node published: deliver it to this node's members. */
static void on_redis_message(redisAsyncContext *ac, void *reply_ptr, void *arg)
{
    (void)ac;
    (void)arg;
    redisReply *reply = reply_ptr;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    redisReply *kind = reply->element[0];
    if (kind->type == REDIS_REPLY_STRING && strcmp(kind->str, "psubscribe") == 0) {
        backoff_ms = BACKOFF_MIN_MS;
        printf("redis subscribed\n");
        fflush(stdout);
        return;
    }
    if (reply->elements != 4 || strcmp(kind->str, "pmessage") != 0)
        return;
    redisReply *channel = reply->element[2], *payload = reply->element[3];
    if (channel->len <= 5 || channel->len - 5 > MAX_ROOM || payload->len < sizeof node_id)
        return;
    if (memcmp(payload->str, node_id, sizeof node_id - 1) == 0)
        return; /* our own: its members had it already */
    char room[MAX_ROOM + 1];
    memcpy(room, channel->str + 5, channel->len - 5);
    room[channel->len - 5] = '\0';
    wsconn_publish(reactors[0], room, WSCONN_MSG_TEXT, payload->str + sizeof node_id,
                   payload->len - sizeof node_id);
}

static redisAsyncContext *redis_open(void)
{
    redisAsyncContext *ac = redisAsyncConnect(redis_host, redis_port);
    if (ac == NULL)
        return NULL;
    if (ac->err || redisWsconnAttach(ac, reactors[0]) != REDIS_OK) {
        LOG("chat_server: redis: %s\n", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    redisAsyncSetConnectCallback(ac, on_redis_connect);
    redisAsyncSetDisconnectCallback(ac, on_redis_disconnect);
    return ac;
}

static void redis_connect(void)
{
    if (redis_pub == NULL)
        redis_pub = redis_open();
    if (redis_sub == NULL) {
        redis_sub = redis_open();
        if (redis_sub != NULL)
            redisAsyncCommand(redis_sub, on_redis_message, NULL, "PSUBSCRIBE chat:*");
    }
    if (redis_pub == NULL || redis_sub == NULL)
        redis_retry_later();
}

/* Publishes a member's message to the other nodes (if Redis is up). */
static void redis_relay(const char *room, const char *data, size_t len)
{
    if (redis_pub == NULL)
        return;
    char *payload = malloc(sizeof node_id + len);
    if (payload == NULL)
        return;
    memcpy(payload, node_id, sizeof node_id - 1);
    payload[sizeof node_id - 1] = ' ';
    memcpy(payload + sizeof node_id, data, len);
    redisAsyncCommand(redis_pub, NULL, NULL, "PUBLISH chat:%s %b", room, payload, sizeof node_id + len);
    free(payload);
}

/* A message handed from another thread to the Redis thread. */
struct relayed {
    char room[MAX_ROOM + 1];
    size_t len;
    char data[];
};

static void relay_on_first_thread(void *arg)
{
    struct relayed *m = arg;
    redis_relay(m->room, m->data, m->len);
    free(m);
}

/* ------------------------------------------------------------------------ */
/* Room members.                                                            */

#define MAX_ORIGINS 16
static const char *allowed_origins[MAX_ORIGINS]; /* --allow-origin */
static int origin_count;
static const char *auth_token; /* --auth-token */

struct member {
    wsconn_t *con;
    char room[MAX_ROOM + 1];
};

/* The path names the room: /room/NAME (a query string is ignored). */
static void on_build(int fd, void *arg)
{
    struct member *m = arg;
    const char *path = wsconn_request_path(m->con);
    const char *name = path != NULL && strncmp(path, "/room/", 6) == 0 ? path + 6 : "";
    size_t len = strcspn(name, "?#");
    if (len == 0 || len > MAX_ROOM) {
        wsconn_close(m->con, 1008, "connect to /room/NAME");
        return;
    }
    memcpy(m->room, name, len);
    m->room[len] = '\0';
    wsconn_subscribe(m->con, m->room);
    LOG("chat_server: fd %d joined %s (thread %d)\n", fd, m->room, thread_id);
}

static void on_message(wsconn_t *con, void *arg, int type, const uint8_t *data, size_t len)
{
    (void)con;
    struct member *m = arg;
    if (type != WSCONN_MSG_TEXT || m->room[0] == '\0')
        return;
    /* Everyone in the room on this node, the sender included, on every thread. */
    wsconn_publish(reactors[thread_id], m->room, WSCONN_MSG_TEXT, data, len);
    if (redis_host == NULL)
        return;
    if (thread_id == 0) {
        redis_relay(m->room, (const char *)data, len);
        return;
    }
    struct relayed *r = malloc(sizeof *r + len);
    if (r == NULL)
        return;
    strcpy(r->room, m->room);
    r->len = len;
    memcpy(r->data, data, len);
    if (wsconn_reactor_defer(reactors[0], relay_on_first_thread, r) != WSCONN_OK)
        free(r);
}

/* Plain HTTP: GET /metrics, or 404. */
static int on_http(wsconn_t *con, void *arg, const char *method, const char *path)
{
    (void)arg;
    if (strcmp(method, "GET") == 0 && strcmp(path, "/metrics") == 0)
        return ops_metrics(con, reactors[thread_id], thread_id);
    static const char not_found[] = "404 not found\n";
    return wsconn_http_respond(con, 404, "text/plain; charset=utf-8", not_found, sizeof not_found - 1);
}

static void on_close(wsconn_t *con, void *arg, int code, const char *reason, size_t reason_len)
{
    (void)reason;
    (void)reason_len;
    struct member *m = arg;
    LOG("chat_server: %s: a member left (%d)\n", m->room, code);
    wsconn_release(con); /* its subscriptions end with it */
    free(m);
}

/* --auth-token: a member shows the token (see auth.h), or gets 401. */
static int on_upgrade(wsconn_t *con, void *arg)
{
    (void)arg;
    if (!auth_has_token(con, auth_token))
        auth_refuse(con);
    return WSCONN_UPGRADE_ACCEPT;
}

/* The connection owns fd from wsconn_set_fd on: when the start fails,
 * releasing it closes fd, and the negative return does not close it again. */
static int on_accept(int fd, void *arg)
{
    (void)arg;
    struct member *m = calloc(1, sizeof *m);
    if (m == NULL)
        return -1;
    m->con = wsconn_create(reactors[thread_id]);
    wsconn_set_build_func(m->con, on_build, m);
    wsconn_set_message_func(m->con, on_message, m);
    wsconn_set_close_ex_func(m->con, on_close, m);
    if (auth_token != NULL)
        wsconn_set_upgrade_func(m->con, on_upgrade, m);
    wsconn_set_http_func(m->con, on_http, m);
    wsconn_set_fd(m->con, fd);
    int rc = wsconn_start(m->con);
    if (rc != WSCONN_OK) {
        wsconn_release(m->con);
        free(m);
    }
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Threads and main.                                                        */

struct worker {
    pthread_t thread;
    int id;
    wsconn_acceptor_t *acc;
};

static void *worker_run(void *arg)
{
    struct worker *w = arg;
    thread_id = w->id;
    wsconn_reactor_t *r = reactors[w->id];
    if (w->id == 0 && redis_host != NULL) {
        redis_timer = wsconn_timer_create(r, on_redis_timer, NULL);
        redis_connect();
    }
    struct ops_thread ops;
    ops_thread_init(&ops, w->id, r);
    ops.acceptor = w->acc; /* stopped first at a signal */
    while (ops_step(&ops))
        if (wsconn_reactor_dispatch(r, 100) < 0)
            break;
    ops_thread_end(&ops);
    if (ops.drained) {
        printf("chat_server: thread %d drained, %zu cut\n", w->id, ops.cut);
        fflush(stdout);
    }
    wsconn_acceptor_release(w->acc);
    if (w->id == 0 && redis_host != NULL) {
        if (redis_pub != NULL)
            redisAsyncFree(redis_pub);
        if (redis_sub != NULL)
            redisAsyncFree(redis_sub);
        wsconn_timer_release(redis_timer);
    }
    return NULL;
}

static void make_node_id(void)
{
    unsigned char bytes[8] = {0};
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(bytes, 1, sizeof bytes, f) != sizeof bytes) {
        unsigned long seed = (unsigned long)time(NULL) ^ (unsigned long)getpid() << 16;
        for (size_t i = 0; i < sizeof bytes; i++)
            bytes[i] = (unsigned char)(seed >> (i * 5));
    }
    if (f != NULL)
        fclose(f);
    for (size_t i = 0; i < sizeof bytes; i++)
        snprintf(node_id + 2 * i, 3, "%02x", bytes[i]);
}

static int usage(void)
{
    fprintf(stderr, "usage: chat_server [-t N] [-v] [--redis HOST:PORT] [--allow-origin ORIGIN]...\n"
                    "                   [--auth-token TOKEN] [--drain-ms MS] [port]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int port = 9997;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads < 1 || threads > MAX_THREADS)
                return usage();
        } else if (strcmp(argv[i], "-v") == 0) {
            verbose = 1;
        } else if (strcmp(argv[i], "--redis") == 0 && i + 1 < argc) {
            static char host[256];
            const char *colon = strrchr(argv[++i], ':');
            if (colon == NULL || (size_t)(colon - argv[i]) >= sizeof host)
                return usage();
            memcpy(host, argv[i], (size_t)(colon - argv[i]));
            host[colon - argv[i]] = '\0';
            redis_host = host;
            redis_port = atoi(colon + 1);
            if (redis_port <= 0 || redis_port > 65535)
                return usage();
        } else if (strcmp(argv[i], "--allow-origin") == 0 && i + 1 < argc) {
            if (origin_count == MAX_ORIGINS)
                return usage();
            allowed_origins[origin_count++] = argv[++i];
        } else if (strcmp(argv[i], "--auth-token") == 0 && i + 1 < argc) {
            auth_token = argv[++i];
        } else if (strcmp(argv[i], "--drain-ms") == 0 && i + 1 < argc) {
            int ms = atoi(argv[++i]);
            if (ms < 0)
                return usage();
            ops_drain_ms = (unsigned)ms;
        } else if (argv[i][0] != '-') {
            port = atoi(argv[i]);
            if (port < 0 || port > 65535)
                return usage();
        } else {
            return usage();
        }
    }
    signal(SIGPIPE, SIG_IGN);
    /* SIGTERM, SIGINT: drain; a socket handed over as fd 3. */
    if (ops_init(threads) < 0)
        return 1;
    make_node_id();

    /* Every reactor and acceptor made here, before the threads run them. */
    struct worker workers[MAX_THREADS];
    for (int i = 0; i < threads; i++) {
        workers[i].id = i;
        reactors[i] = wsconn_reactor_create();
        if (reactors[i] == NULL)
            return 1;
        if (i > 0)
            wsconn_reactor_share_topics(reactors[i], reactors[0]);
        if (origin_count > 0) {
            wsconn_config_t *config = wsconn_config_new();
            for (int o = 0; o < origin_count; o++)
                if (wsconn_config_add_allowed_origin(config, allowed_origins[o]) != WSCONN_OK) {
                    fprintf(stderr, "chat_server: not an origin (scheme://host[:port]): %s\n",
                            allowed_origins[o]);
                    return 2;
                }
            wsconn_reactor_set_config(reactors[i], config);
            wsconn_config_free(config);
        }
        if (verbose)
            wsconn_reactor_set_log_func(reactors[i], ops_log, "chat_server", WSCONN_LOG_INFO);
        workers[i].acc = wsconn_acceptor_create(reactors[i]);
        wsconn_acceptor_set_accept_func(workers[i].acc, on_accept, NULL);
        int fd = ops_listen_fd(i);
        if (threads > 1 && fd < 0)
            wsconn_acceptor_set_reuseport(workers[i].acc, 1);
        int rc = ops_listen(workers[i].acc, fd, "127.0.0.1", port);
        if (rc != WSCONN_OK) {
            fprintf(stderr, "chat_server: cannot listen on 127.0.0.1:%d: %s\n", port, wsconn_strerror(rc));
            return 1;
        }
        port = wsconn_acceptor_port(workers[i].acc); /* port 0: the others share the one picked */
    }
    char where[80];
    snprintf(where, sizeof where, "127.0.0.1:%d", port);
    if (ops_inherited_fd >= 0)
        ops_inherited_address(where, sizeof where);
    printf("chat_server%s listening on %s\n", ops_inherited_fd >= 0 ? " (socket handed over)" : "", where);
    fflush(stdout);
    LOG("chat_server: node %s, %d thread(s)%s%s\n", node_id, threads, redis_host ? ", redis " : "",
        redis_host ? redis_host : "");
    for (int i = 0; i < threads; i++)
        pthread_create(&workers[i].thread, NULL, worker_run, &workers[i]);
    for (int i = 0; i < threads; i++)
        pthread_join(workers[i].thread, NULL);
    for (int i = 0; i < threads; i++)
        wsconn_reactor_release(reactors[i]);
    return 0;
}
