/*
 * ops.h - running a wsconn server in production, shared by echo_server.c and
 * chat_server.c (header-only: static functions).
 *
 *   - Signals: the first SIGTERM or SIGINT drains every reactor, each on its
 *     own thread (wsconn_reactor_drain, within --drain-ms); a second one cuts
 *     what is left at once. The loop ends when its reactor drained; the
 *     program exits 0. Every thread stops accepting before any sends its
 *     1001s (the thread the signal woke wakes the others): a client told to
 *     go away must not reconnect to another thread of this process.
 *   - Socket hand-over: a listening socket passed as fd 3 by systemd's socket
 *     activation (LISTEN_FDS/LISTEN_PID, wsconn_listen_fds) is used instead of
 *     binding one, by every reactor (each gets its own dup). A restart without
 *     refusing anyone: start the new process on the same socket, then SIGTERM
 *     the old one.
 *   - GET /metrics: the counters of every reactor, summed, plus the process's
 *     RSS and open fds, in Prometheus' text format (wsconn_stats_prometheus).
 *     Counters are the reactors' threads' own: each thread publishes a copy at
 *     most every 10 ms (only with several threads), and the thread answering
 *     adds its own, current.
 *   - -v: the library's log lines (wsconn_reactor_set_log_func) on stderr.
 *
 * Use: ops_init() in main, before threads; OPS_MAX_THREADS reactors at most;
 * per reactor thread, an ops_thread set up with ops_thread_init() (and its
 * `acceptor` set once made), then
 * `while (ops_step(&t)) wsconn_reactor_dispatch(reactor, 100);`, and
 * ops_thread_end() before the reactor is released.
 */
#ifndef WSCONN_OPS_H
#define WSCONN_OPS_H

#include "wsconn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define OPS_MAX_THREADS 64
#define OPS_DEFAULT_DRAIN_MS 5000

/* SIGTERM and SIGINT received so far. */
static volatile sig_atomic_t ops_signals;
/* The deadline of a drain (--drain-ms). */
static unsigned ops_drain_ms = OPS_DEFAULT_DRAIN_MS;
/* The listening socket handed over (fd 3), or -1. */
static int ops_inherited_fd = -1;
/* How many reactor threads share the metrics. */
static int ops_threads = 1;

/* Copies of each thread's counters, for the thread answering /metrics; the
 * reactors not released yet, for a thread that must wake the others. */
static pthread_mutex_t ops_lock = PTHREAD_MUTEX_INITIALIZER;
static wsconn_stats_t ops_snapshots[OPS_MAX_THREADS];
static wsconn_reactor_t *ops_reactors[OPS_MAX_THREADS];
/* Threads that stopped accepting (or left) since the first signal. */
static atomic_int ops_stopped;

/* One reactor thread's part. */
struct ops_thread {
    int index;
    wsconn_reactor_t *reactor;
    wsconn_acceptor_t *acceptor; /* stopped first at a signal (may be NULL) */
    int stopped;     /* this thread stopped accepting */
    int drain_asked; /* 0, 1 (draining), 2 (cut asked) */
    int drained;
    size_t cut;
    struct timespec published;
};

static inline void ops_on_signal(int sig)
{
    (void)sig;
    ops_signals++;
}

/* Signals, and the socket handed over, if any (call before threads).
 * Returns 0, or -1 when LISTEN_FDS is malformed. */
static inline int ops_init(int threads)
{
    ops_threads = threads;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = ops_on_signal; /* no SA_RESTART: interrupt the wait */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int n = wsconn_listen_fds(1);
    if (n < 0) {
        fprintf(stderr, "LISTEN_FDS: %s\n", wsconn_strerror(n));
        return -1;
    }
    if (n > 0)
        ops_inherited_fd = 3; /* the first one; others are not ours */
    return 0;
}

/* The socket the acceptor of thread `index` adopts: fd 3 for the first, a
 * dup for the others (made before any thread can drain and close fd 3), or
 * -1 when none was handed over (bind instead). */
static inline int ops_listen_fd(int index)
{
    if (ops_inherited_fd < 0)
        return -1;
    return index == 0 ? ops_inherited_fd : dup(ops_inherited_fd);
}

/* Listens on `fd` (from ops_listen_fd) or binds ip:port. */
static inline int ops_listen(wsconn_acceptor_t *acc, int fd, const char *ip, int port)
{
    return fd >= 0 ? wsconn_acceptor_start_fd(acc, fd) : wsconn_acceptor_start(acc, ip, port);
}

/* "ADDR:PORT" of the handed-over socket, for the "listening on" line. */
static inline void ops_inherited_address(char *out, size_t size)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (getsockname(ops_inherited_fd, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof ip);
            port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, ip, sizeof ip);
            port = ntohs(a->sin_port);
        }
    }
    snprintf(out, size, "%s:%d", ip, port);
}

static inline void ops_on_drained(wsconn_reactor_t *reactor, void *arg, size_t cut)
{
    (void)reactor;
    struct ops_thread *t = arg;
    t->drained = 1;
    t->cut = cut;
}

static inline void ops_thread_init(struct ops_thread *t, int index, wsconn_reactor_t *reactor)
{
    memset(t, 0, sizeof *t);
    t->index = index;
    t->reactor = reactor;
    pthread_mutex_lock(&ops_lock);
    ops_reactors[index] = reactor;
    pthread_mutex_unlock(&ops_lock);
}

static inline void ops_wake(void *arg)
{
    (void)arg; /* the dispatch it ends runs ops_step */
}

/* Stops accepting (once) and counts it; wakes the other threads, so that
 * they stop too without waiting for their dispatch's timeout. */
static inline void ops_stop_accepting(struct ops_thread *t)
{
    if (t->stopped)
        return;
    t->stopped = 1;
    if (t->acceptor != NULL)
        wsconn_acceptor_stop(t->acceptor);
    atomic_fetch_add(&ops_stopped, 1);
    pthread_mutex_lock(&ops_lock);
    for (int i = 0; i < ops_threads && i < OPS_MAX_THREADS; i++)
        if (i != t->index && ops_reactors[i] != NULL)
            wsconn_reactor_defer(ops_reactors[i], ops_wake, NULL);
    pthread_mutex_unlock(&ops_lock);
}

/* The thread is done with its reactor (call before releasing it): no other
 * thread wakes it anymore, and a drain waits for it no longer. */
static inline void ops_thread_end(struct ops_thread *t)
{
    if (t->reactor != NULL) {
        pthread_mutex_lock(&ops_lock);
        ops_reactors[t->index] = NULL;
        pthread_mutex_unlock(&ops_lock);
        t->reactor = NULL;
    }
    if (!t->stopped) {
        t->stopped = 1;
        atomic_fetch_add(&ops_stopped, 1);
    }
}

/* Publishes this thread's counters for the others (at most every 10 ms). */
static inline void ops_publish_stats(struct ops_thread *t)
{
    if (ops_threads < 2)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
    long ms = (now.tv_sec - t->published.tv_sec) * 1000 + (now.tv_nsec - t->published.tv_nsec) / 1000000;
    if (ms < 10)
        return;
    t->published = now;
    wsconn_stats_t copy;
    if (wsconn_reactor_stats(t->reactor, &copy, sizeof copy) != WSCONN_OK)
        return;
    pthread_mutex_lock(&ops_lock);
    ops_snapshots[t->index] = copy;
    pthread_mutex_unlock(&ops_lock);
}

/* Before each dispatch: at the first signal stops accepting, and starts the
 * drain once every thread did; cuts at the second. Returns 0 once the
 * reactor has drained (leave the loop). */
static inline int ops_step(struct ops_thread *t)
{
    if (t->drained)
        return 0;
    int signals = ops_signals;
    if (signals >= 1)
        ops_stop_accepting(t);
    int all_stopped = atomic_load(&ops_stopped) >= ops_threads;
    if (signals >= 1 && t->drain_asked == 0 && (all_stopped || signals >= 2)) {
        t->drain_asked = 1;
        wsconn_reactor_drain(t->reactor, ops_drain_ms, ops_on_drained, t);
    }
    if (signals >= 2 && t->drain_asked == 1) {
        t->drain_asked = 2;
        wsconn_reactor_drain(t->reactor, 0, ops_on_drained, t);
    }
    ops_publish_stats(t);
    return 1;
}

/* Answers GET /metrics on thread `index`'s connection `con`: every reactor's
 * counters, summed (this one's current, the others' last copies). */
static inline int ops_metrics(wsconn_t *con, wsconn_reactor_t *reactor, int index)
{
    wsconn_stats_t total = {.size = sizeof total};
    wsconn_stats_t mine;
    if (wsconn_reactor_stats(reactor, &mine, sizeof mine) == WSCONN_OK)
        wsconn_stats_add(&total, &mine);
    pthread_mutex_lock(&ops_lock);
    for (int i = 0; i < ops_threads && i < OPS_MAX_THREADS; i++)
        if (i != index && ops_snapshots[i].size != 0)
            wsconn_stats_add(&total, &ops_snapshots[i]);
    pthread_mutex_unlock(&ops_lock);
    int len = wsconn_stats_prometheus(&total, WSCONN_METRICS_PROCESS, NULL, 0);
    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (text == NULL) {
        static const char error[] = "metrics unavailable\n";
        return wsconn_http_respond(con, 500, "text/plain; charset=utf-8", error, sizeof error - 1);
    }
    wsconn_stats_prometheus(&total, WSCONN_METRICS_PROCESS, text, (size_t)len + 1);
    int rc = wsconn_http_respond(con, 200, "text/plain; version=0.0.4; charset=utf-8", text, (size_t)len);
    free(text);
    return rc;
}

/* -v: the library's log lines, on stderr (one write per line: threads'
 * lines do not interleave). */
static inline void ops_log(void *arg, int level, int event, wsconn_t *con, const char *peer, const char *message)
{
    static const char *const levels[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char fd[24] = "";
    if (con != NULL)
        snprintf(fd, sizeof fd, " fd=%d", wsconn_fd(con));
    fprintf(stderr, "%s: %s %s%s%s%s: %s\n", (const char *)arg,
            level >= 0 && level <= 3 ? levels[level] : "?", wsconn_log_event_name(event), fd,
            peer != NULL ? " " : "", peer != NULL ? peer : "", message);
}

#endif
