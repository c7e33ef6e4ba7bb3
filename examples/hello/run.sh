#!/usr/bin/env bash
# The paper's smallest example ("Código 1"), from nothing, with seml commands only.
# Usage: examples/hello/run.sh [WORKDIR]   (default: a new temporary folder, kept for inspection)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seml="${SEML:-$here/../../.venv/bin/seml}"
[ -x "$seml" ] || seml="$(command -v seml)"
work="${1:-$(mktemp -d -t seml-hello-XXXXXX)}"
mkdir -p "$work"
cd "$work"
step() { printf '\n== %s\n' "$*"; }

step "1. the attestation service: init, then serve over HTTPS on a free loopback port"
"$seml" cas init cas --host 127.0.0.1
"$seml" cas serve cas --listen 127.0.0.1:0 >cas.out 2>cas.log &
cas_pid=$!
trap 'kill $cas_pid 2>/dev/null || true; wait $cas_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do grep -q "serving" cas.out 2>/dev/null && break; sleep 0.1; done
read -r SEML_CAS SEML_CAS_FINGERPRINT < <(awk '/serving/ {print $4, $6}' cas.out)
[ -n "${SEML_CAS:-}" ] || { echo "the attestation service did not start:" >&2; cat cas.log >&2; exit 1; }
export SEML_CAS SEML_CAS_FINGERPRINT
echo "service at $SEML_CAS, pinned $SEML_CAS_FINGERPRINT"

step "2. a party's identity"
"$seml" keys new alice

step "3. the session: the service's measurement, its secret, its volume, its injected main.py"
measurement="$("$seml" measure)"
echo "measurement (simulated) $measurement"
{
  cat <<YAML
version: 1
name: hello
parties:
  alice: $(cat alice.pub)
approval:
  create: [alice]
  update: [alice]
security:
  tolerate: [simulation]   # no TEE here: accept software evidence, and say so
secrets:
  - name: greeting_secret
    kind: ascii
    size: 32
    readers: [hello]
volumes:
  - name: data
services:
  - name: hello
    measurements: [$measurement]
    command: [python3, main.py]
    environment:
      GREETING_SECRET: \$\$SEML::greeting_secret\$\$
    volumes:
      data: /data
    files:
      /main.py: |
YAML
  sed 's/^/        /' "$here/main.py"
} >hello.yaml
"$seml" session check hello.yaml

step "4. sign and submit"
"$seml" session sign hello.yaml --key alice.key
"$seml" session submit hello.yaml --signature hello.alice.sig

step "5. run the service twice: the volume's file grows"
"$seml" run --session hello --service hello --volumes-dir volumes
"$seml" run --session hello --service hello --volumes-dir volumes

step "6. what the disk holds: an encrypted volume"
"$seml" volume inspect volumes/hello/data
echo
echo "done: everything is in $work"
