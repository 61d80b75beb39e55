// The generated header must compile as C++ (C++11, -Wall -Wextra -Werror)
// and its functions must link and be callable from C++, callback types
// included: tests/runtime_api_null.rs builds and runs this.
#include "wsconn.h"

#include <cstdio>
#include <cstring>

static int fail(const char *what) {
    std::printf("FAIL: %s\n", what);
    return 1;
}

int main() {
    const char *version = wsconn_version();
    if (version == nullptr || version[0] == '\0') return fail("wsconn_version() returned nothing");

    // The enums are usable as C++ values.
    wsconn_result ok = WSCONN_OK;
    wsconn_msg_type text = WSCONN_MSG_TEXT;
    if (ok != 0 || text != 1 || WSCONN_ERR_NULL != -1 || WSCONN_ERR_STATE != -16) return fail("enum values");

    // The sans-IO session.
    wsconn_config_t *cfg = wsconn_config_new();
    wsconn_session_callbacks_t cb;
    std::memset(&cb, 0, sizeof cb);
    cb.on_message = [](wsconn_session_t *, void *, int, const uint8_t *, size_t) {};
    wsconn_session_t *s = wsconn_session_server_new(cfg, &cb, nullptr);
    int state = wsconn_session_state(s);
    wsconn_session_free(s);
    if (state != WSCONN_STATE_CONNECTING) return fail("session state");

    // The reactor API, with captureless lambdas as callbacks.
    wsconn_reactor_t *r = wsconn_reactor_create();
    if (r == nullptr) return fail("wsconn_reactor_create");
    if (wsconn_reactor_set_config(r, cfg) != WSCONN_OK) return fail("wsconn_reactor_set_config");
    wsconn_config_free(cfg);
    static int deferred = 0;
    if (wsconn_reactor_defer(r, [](void *arg) { ++*static_cast<int *>(arg); }, &deferred) != WSCONN_OK)
        return fail("wsconn_reactor_defer");
    wsconn_acceptor_t *acc = wsconn_acceptor_create(r);
    wsconn_acceptor_set_accept_func(acc, [](int, void *) { return -1; }, nullptr);
    if (wsconn_acceptor_start(acc, "127.0.0.1", 0) != WSCONN_OK) return fail("wsconn_acceptor_start");
    wsconn_t *con = wsconn_create(r);
    wsconn_set_build_func(con, [](int, void *) {}, nullptr);
    wsconn_set_message_func(con, [](wsconn_t *, void *, int, const uint8_t *, size_t) {}, nullptr);
    wsconn_set_close_ex_func(con, [](wsconn_t *, void *, int, const char *, size_t) {}, nullptr);
    for (int i = 0; i < 100 && deferred == 0; i++) wsconn_reactor_dispatch(r, 10);
    if (deferred != 1) return fail("the deferred function did not run");
    wsconn_release(con);
    wsconn_acceptor_release(acc);
    if (wsconn_reactor_release(r) != WSCONN_OK) return fail("wsconn_reactor_release");

    std::printf("wsconn %s from C++\n", version);
    return 0;
}
