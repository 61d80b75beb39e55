"""permessage-deflate (RFC 7692) from the fuzzing server's side, for the
stand-in's compression cases: the client's offer read, the server's answer
chosen by a case's policy, and the two directions' streams (the server's
compressor, the decompressor of what the client sends).

A policy takes the client's offer (a dict of parameter -> value or None) and
returns an Agreement, or None to decline the extension.  Standard library
only (zlib)."""

import zlib

TAIL = b"\x00\x00\xff\xff"
INFLATE_STEP = 64
PARAMS = ("server_no_context_takeover", "client_no_context_takeover",
          "server_max_window_bits", "client_max_window_bits")


class BadData(Exception):
    """What the client sent does not inflate as agreed."""


def parse_offer(header):
    """The first permessage-deflate offer of a Sec-WebSocket-Extensions value:
    {param: value or None}, or None when there is none (or it is malformed)."""
    if not header:
        return None
    for item in header.split(","):
        parts = [p.strip() for p in item.split(";")]
        if parts[0] != "permessage-deflate":
            continue
        params = {}
        for p in parts[1:]:
            name, sep, value = p.partition("=")
            name, value = name.strip(), value.strip().strip('"')
            if name not in PARAMS or name in params:
                return None
            params[name] = value if sep else None
        return params
    return None


class Agreement:
    """What the server answered: the parameters in force, and the state of
    both directions' streams."""

    def __init__(self, offer):
        self.offer = offer
        self.server_no_takeover = "server_no_context_takeover" in offer
        self.client_no_takeover = "client_no_context_takeover" in offer
        self.server_bits = int(offer.get("server_max_window_bits") or 15)
        self.client_bits = int(offer.get("client_max_window_bits") or 15)
        # Named in the answer: a window the client asked for (required), or
        # one the server imposes.
        self.name_server_bits = "server_max_window_bits" in offer
        self.name_client_bits = bool(offer.get("client_max_window_bits"))
        self._compressor = None
        self._decompressor = None

    def impose_client_window(self, bits):
        """The client's window, lowered to `bits` when its offer allows it
        (it named client_max_window_bits)."""
        if "client_max_window_bits" in self.offer:
            self.client_bits = min(self.client_bits, bits)
            self.name_client_bits = True

    def impose_server_window(self, bits):
        self.server_bits = min(self.server_bits, bits)
        self.name_server_bits = True

    def response(self):
        items = ["permessage-deflate"]
        if self.server_no_takeover:
            items.append("server_no_context_takeover")
        if self.client_no_takeover:
            items.append("client_no_context_takeover")
        if self.name_server_bits:
            items.append("server_max_window_bits=%d" % self.server_bits)
        if self.name_client_bits:
            items.append("client_max_window_bits=%d" % self.client_bits)
        return "; ".join(items)

    def compress(self, payload):
        """A message's compressed payload (without the tail), as the server
        sends it: its context kept unless server_no_context_takeover."""
        if self._compressor is None or self.server_no_takeover:
            # zlib's raw streams take 9 bits at the least (within any window agreed).
            self._compressor = zlib.compressobj(6, zlib.DEFLATED, -max(self.server_bits, 9))
        data = self._compressor.compress(payload) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        assert data.endswith(TAIL)
        return data[:-4]

    def inflate(self, data):
        """A compressed message from the client, inflated with exactly the
        agreed window (and fresh each time under client_no_context_takeover)."""
        if self._decompressor is None or self.client_no_takeover:
            self._decompressor = zlib.decompressobj(-self.client_bits)
        d, out, rest = self._decompressor, [], data + TAIL
        try:
            # A few bytes at a time: zlib then resolves each back-reference
            # from its window alone (it reads from the output buffer too), so a
            # distance beyond the agreed window (plus INFLATE_STEP) fails.
            while True:
                piece = d.decompress(rest, INFLATE_STEP)
                out.append(piece)
                rest = d.unconsumed_tail
                if not rest and len(piece) < INFLATE_STEP:
                    return b"".join(out)
        except zlib.error as e:
            raise BadData("does not inflate within the agreed %d-bit window%s: %s" % (
                self.client_bits, "" if self.client_no_takeover else " and context", e))


# --- policies: how a case answers the client's offer ---------------------------


def as_offered(offer):
    return Agreement(offer)


def server_window_9(offer):
    a = Agreement(offer)
    a.impose_server_window(9)
    return a


def client_window_9(offer):
    a = Agreement(offer)
    a.impose_client_window(9)
    return a


def client_no_context_takeover(offer):
    a = Agreement(offer)
    a.client_no_takeover = True
    return a


def declined(offer):
    return None
