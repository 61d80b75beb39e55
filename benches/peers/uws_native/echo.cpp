// Native uWebSockets (C++) echo server, the strongest peer of wsconn's
// benchmarks: `uws_native_echo PORT`. The same limits as the other peers
// (benches/peers/uws/echo.mjs): 16 MiB messages, no idle timeout, room
// enough for backpressure that no client is dropped; no compression (built
// without zlib); listens on 127.0.0.1 only. Built by benches/run.sh from the
// uWebSockets and uSockets sources of the crate named in Cargo.toml here.
#include "App.h"

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char **argv) {
    int port = argc == 2 ? std::atoi(argv[1]) : 0;
    if (port <= 0 || port > 65535) {
        std::fprintf(stderr, "usage: uws_native_echo PORT\n");
        return 2;
    }
    struct PerSocketData {};
    uWS::App()
        .ws<PerSocketData>("/*", {
            .compression = uWS::DISABLED,
            .maxPayloadLength = 16 * 1024 * 1024,
            .idleTimeout = 0,
            .maxBackpressure = 256 * 1024 * 1024,
            .closeOnBackpressureLimit = false,
            .message = [](auto *ws, std::string_view message, uWS::OpCode opCode) {
                ws->send(message, opCode);
            },
        })
        .listen("127.0.0.1", port, [port](auto *listenSocket) {
            if (!listenSocket) {
                std::fprintf(stderr, "uws_native_echo: cannot listen on 127.0.0.1:%d\n", port);
                std::exit(1);
            }
        })
        .run();
    return 0;
}
