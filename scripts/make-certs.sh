#!/usr/bin/env bash
# Makes the certificates of promptgate's own door (mutual TLS on its ext_proc
# port) with openssl: one CA, promptgate's server certificate and Envoy's
# client certificate, both signed by it.
#
#   scripts/make-certs.sh DIR [SERVER_NAME...]
#
# SERVER_NAMEs go into promptgate's certificate (default: localhost and
# 127.0.0.1; on Kubernetes e.g. promptgate.promptgate.svc). In DIR:
#   ca.crt, ca.key            the CA (keep ca.key offline: it mints clients)
#   promptgate.crt/.key       promptgate: --tls-cert, --tls-key; --client-ca ca.crt
#   envoy.crt/.key            Envoy's client certificate (deploy/envoy/promptgate-mtls.yaml;
#                             trusted_ca: ca.crt)
# ECDSA P-256 keys, 825 days for the leaves; rerun to rotate (promptgate
# reloads its files when they change). Existing files are not overwritten
# unless FORCE=1.
set -euo pipefail

dir=${1:?usage: scripts/make-certs.sh DIR [SERVER_NAME...]}
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(localhost 127.0.0.1)
mkdir -p "$dir"
cd "$dir"
if [ -e ca.key ] && [ "${FORCE:-0}" != 1 ]; then
  echo "$dir/ca.key exists; FORCE=1 to replace the CA and every certificate" >&2
  exit 1
fi

san=""
for n in "${names[@]}"; do
  if [[ $n =~ ^[0-9.]+$ || $n == *:* ]]; then san+="IP:$n,"; else san+="DNS:$n,"; fi
done
san=${san%,}

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; chmod 600 "$1"; }

key ca.key
openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/CN=promptgate CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" -out ca.crt

leaf() { # name subject extensions
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 -days 825 \
    -extfile <(printf '%s\n' "$3") -out "$1.crt" 2>/dev/null
  rm -f "$1.csr"
}
leaf promptgate promptgate "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san"
leaf envoy envoy "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
rm -f ca.srl

echo "made in $dir: ca.crt, promptgate.crt/.key ($san), envoy.crt/.key"
echo "serve:  promptgate serve --tls-cert $dir/promptgate.crt --tls-key $dir/promptgate.key --client-ca $dir/ca.crt"
