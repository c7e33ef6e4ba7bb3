#!/usr/bin/env bash
# Two parties and an operator run the SEML flow with seml commands only. Each role's machine is
# a folder here, with its own seml configuration (SEML_CONFIG_DIR) and its own layout: alice
# keeps her files under ROOT/parties/alice, bob under ROOT/bob-host/srv/seml, the operator under
# ROOT/cloud. On real machines the same commands run on each, without SEML_CONFIG_DIR.
#
#   examples/iris/walkthrough.sh [ROOT]
#   STORAGE=s3://bucket/iris SEML_S3_ENDPOINT=http://host:8333 examples/iris/walkthrough.sh
#
# With S3, the standard AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY variables hold the storage
# credentials; the endpoint goes into each machine's profile (and reaches the services only
# from there). Exits non-zero if any step fails. Attestation is simulated (no TEE hardware): the
# sessions tolerate `simulation`, and every `seml run` says so.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seml="${SEML:-$here/../../.venv/bin/seml}"
[ -x "$seml" ] || seml="$(command -v seml)"
ROOT="$(realpath -m "${1:-$(mktemp -d -t seml-iris-XXXXXX)}")"
STORAGE="${STORAGE:-file://$ROOT/storage}"
endpoint="${SEML_S3_ENDPOINT:-}"
unset SEML_S3_ENDPOINT SEML_CAS SEML_CAS_FINGERPRINT SEML_PROFILE
s3=()
[ -n "$endpoint" ] && s3=(--s3-endpoint "$endpoint")
A="$ROOT/parties/alice" B="$ROOT/bob-host/srv/seml" C="$ROOT/cloud"
mkdir -p "$ROOT"
say() { printf '\n== %s\n' "$*"; }
on() { # on MACHINE_DIR seml-arguments...: run seml as that machine (its own configuration)
  local dir="$1"
  shift
  SEML_CONFIG_DIR="$dir/.seml" "$seml" "$@"
}

say "operator: set up the cloud machine and the attestation service, then start it"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
on "$C" init --role operator --root "$C" --listen "127.0.0.1:$port" --storage "$STORAGE" "${s3[@]}"
on "$C" cas serve >"$ROOT/cas.out" 2>"$ROOT/cas.log" &
cas_pid=$!
trap 'kill $cas_pid 2>/dev/null || true; wait $cas_pid 2>/dev/null || true' EXIT
for _ in $(seq 150); do grep -q serving "$ROOT/cas.out" 2>/dev/null && break; sleep 0.1; done
read -r url pin < <(awk '/serving/ {print $4, $6}' "$ROOT/cas.out")
[ -n "${pin:-}" ] || { cat "$ROOT/cas.log" >&2; exit 1; }
echo "the operator sends every party: $url $pin"

say "each party: set up its machine with the service's URL and pin"
on "$A" init --role party --name alice --root "$A" --cas "$url" --cas-fingerprint "$pin" \
  --storage "$STORAGE" "${s3[@]}"
on "$B" init --role party --name bob --root "$B" --cas "$url" --cas-fingerprint "$pin" \
  --storage "$STORAGE" "${s3[@]}" >/dev/null

say "every machine: check itself against its profile"
for m in "$A" "$B" "$C"; do on "$m" doctor | tail -1; done

say "each party: its own data (here: Iris split in two, and rows kept back to try the model)"
"$seml" ml dataset iris --out "$ROOT/iris" --names alice,bob --holdout 10 --seed 1 >/dev/null
for pair in "alice:$A" "bob:$B"; do
  p="${pair%%:*}" dir="${pair#*:}"
  cp "$ROOT/iris/parties/$p.csv" "$dir/data/"
  cp "$ROOT/iris/holdout.csv" "$dir/input/holdout.csv"
done
rm -r "$ROOT/iris"

say "agree: they exchange public keys and platform ids; one writes the sessions; both sign"
"$seml" flow sessions "$ROOT/sessions" --storage "$STORAGE" \
  --party alice="$A/keys/alice.pub" --party bob="$B/keys/bob.pub" \
  --platform alice="$(on "$A" platform id)" --platform bob="$(on "$B" platform id)" \
  --platform cloud="$(on "$C" platform id)"
"$seml" session check "$ROOT/sessions/iris.yaml" >/dev/null
on "$A" session sign "$ROOT/sessions/iris.yaml" --key "$A/keys/alice.key" -o "$ROOT/sessions/iris.alice.sig"
on "$B" session sign "$ROOT/sessions/iris.yaml" --key "$B/keys/bob.key" -o "$ROOT/sessions/iris.bob.sig"
on "$A" session submit "$ROOT/sessions/iris.yaml" -s "$ROOT/sessions/iris.alice.sig" \
  -s "$ROOT/sessions/iris.bob.sig"
for pair in "alice:$A" "bob:$B"; do
  p="${pair%%:*}" dir="${pair#*:}"
  on "$dir" session sign "$ROOT/sessions/iris-$p.yaml" --key "$dir/keys/$p.key" -o "$dir/iris-$p.sig"
  on "$dir" session submit "$ROOT/sessions/iris-$p.yaml" -s "$dir/iris-$p.sig"
done

say "upload: each party's uploader encrypts and pushes its data/ folder"
on "$A" run --session iris-alice --service upload
on "$B" run --session iris-bob --service upload
say "cloud: fetch both datasets into a protected volume, train, publish the encrypted model"
on "$C" run --session iris --service fetch
on "$C" run --session iris --service train
on "$C" run --session iris --service publish
say "each party: pull the model into its protected volume and run it on its input/ rows"
for pair in "alice:$A" "bob:$B"; do
  p="${pair%%:*}" dir="${pair#*:}"
  on "$dir" run --session iris --service "pull-$p"
  on "$dir" run --session iris --service "run-$p"
done
head -4 "$A/output/classification.csv"

say "alice: who got what in her sessions (anyone can check the log's chain, not read it)"
on "$A" cas audit --verify --session iris --session iris-alice --key "$A/keys/alice.key" | tail -3
echo
echo "done: $ROOT"
