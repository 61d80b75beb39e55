#!/usr/bin/env bash
# benches/tls_certs.sh DIR: test certificates for the TLS rows of run.sh, made
# with the openssl CLI: an ECDSA P-256 CA (ca.pem) and a server certificate
# for 127.0.0.1 and localhost signed by it (server.pem, server.key). Kept in
# DIR (benches/target/tls, never committed); made again only when missing.
set -euo pipefail
DIR=$1
[ -s "$DIR/ca.pem" ] && [ -s "$DIR/server.pem" ] && [ -s "$DIR/server.key" ] && exit 0
command -v openssl >/dev/null || { echo "tls_certs.sh: the openssl CLI is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$DIR"
cd "$DIR"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=wsconn bench CA" -keyout ca.key -out ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
    -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
