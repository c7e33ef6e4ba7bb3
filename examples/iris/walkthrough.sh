#!/usr/bin/env bash
# Two parties and an operator run the SEML flow with seml commands only. Each role's machine is
# a folder here (ROOT/parties/alice, ROOT/parties/bob, ROOT/cloud, ROOT/cas); on real machines
# the same commands run on each, with ROOT the same path everywhere.
#
#   examples/iris/walkthrough.sh [ROOT]
#   STORAGE=s3://bucket/iris SEML_S3_ENDPOINT=http://host:8333 examples/iris/walkthrough.sh
#
# Exits non-zero if any step fails. Attestation is simulated (no TEE hardware): the sessions
# tolerate `simulation`, and every `seml run` says so.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
seml="${SEML:-$here/../../.venv/bin/seml}"
[ -x "$seml" ] || seml="$(command -v seml)"
ROOT="$(realpath -m "${1:-$(mktemp -d -t seml-iris-XXXXXX)}")"
STORAGE="${STORAGE:-file://$ROOT/cloud/storage}"
s3=()
[ -n "${SEML_S3_ENDPOINT:-}" ] && s3=(--s3-endpoint "$SEML_S3_ENDPOINT")
A="$ROOT/parties/alice" B="$ROOT/parties/bob" C="$ROOT/cloud"
mkdir -p "$A" "$B" "$C"
say() { printf '\n== %s\n' "$*"; }

say "operator: start the attestation service (HTTPS, pinned certificate)"
"$seml" cas init "$ROOT/cas" --host 127.0.0.1 >/dev/null
"$seml" cas serve "$ROOT/cas" --listen 127.0.0.1:0 >"$ROOT/cas.out" 2>"$ROOT/cas.log" &
cas_pid=$!
trap 'kill $cas_pid 2>/dev/null || true; wait $cas_pid 2>/dev/null || true' EXIT
for _ in $(seq 150); do grep -q serving "$ROOT/cas.out" 2>/dev/null && break; sleep 0.1; done
read -r SEML_CAS SEML_CAS_FINGERPRINT < <(awk '/serving/ {print $4, $6}' "$ROOT/cas.out")
[ -n "${SEML_CAS:-}" ] || { cat "$ROOT/cas.log" >&2; exit 1; }
export SEML_CAS SEML_CAS_FINGERPRINT
echo "parties pin $SEML_CAS_FINGERPRINT"

say "every machine: its (simulated) platform id; each party: its signing key"
"$seml" platform init --platform-key "$C/platform.key" >"$C/platform.id"
for p in alice bob; do
  "$seml" platform init --platform-key "$ROOT/parties/$p/platform.key" >"$ROOT/parties/$p/platform.id"
  "$seml" keys new "$p" --dir "$ROOT/parties/$p" >/dev/null
done

say "each party: its own data (here: Iris split in two, and rows kept back to try the model)"
"$seml" ml dataset iris --out "$ROOT/iris" --names alice,bob --holdout 10 --seed 1 >/dev/null
for p in alice bob; do
  mkdir -p "$ROOT/parties/$p/data"
  cp "$ROOT/iris/parties/$p.csv" "$ROOT/parties/$p/data/"
  cp "$ROOT/iris/holdout.csv" "$ROOT/parties/$p/holdout.csv"
done
rm -r "$ROOT/iris"

say "agree: write the sessions, check them, both parties sign, submit"
"$seml" flow sessions "$ROOT/sessions" --root "$ROOT" --storage "$STORAGE" "${s3[@]}" \
  --seml "$seml" --party alice="$A/alice.pub" --party bob="$B/bob.pub" \
  --platform alice="$(cat "$A/platform.id")" --platform bob="$(cat "$B/platform.id")" \
  --platform cloud="$(cat "$C/platform.id")"
"$seml" session check "$ROOT/sessions/iris.yaml" >/dev/null
for p in alice bob; do
  "$seml" session sign "$ROOT/sessions/iris.yaml" --key "$ROOT/parties/$p/$p.key" \
    -o "$ROOT/sessions/iris.$p.sig"
done
"$seml" session submit "$ROOT/sessions/iris.yaml" -s "$ROOT/sessions/iris.alice.sig" \
  -s "$ROOT/sessions/iris.bob.sig"
for p in alice bob; do
  "$seml" session sign "$ROOT/sessions/iris-$p.yaml" --key "$ROOT/parties/$p/$p.key" \
    -o "$ROOT/parties/$p/iris-$p.sig"
  "$seml" session submit "$ROOT/sessions/iris-$p.yaml" -s "$ROOT/parties/$p/iris-$p.sig"
done

# A service sees nothing of this machine's environment but PATH, locale and time zone: the
# storage credentials its programs need (S3) are passed by name.
pass=()
for v in AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION AWS_DEFAULT_REGION; do
  [ -n "${!v:-}" ] && pass+=(--pass-env "$v")
done
run() {  # run MACHINE_DIR SESSION SERVICE
  "$seml" run --session "$2" --service "$3" --platform-key "$1/platform.key" \
    --volumes-dir "$1/volumes" "${pass[@]}"
}
say "upload: each party's uploader encrypts and pushes its data"
run "$A" iris-alice upload
run "$B" iris-bob upload
say "cloud: fetch both datasets into a protected volume, train, publish the encrypted model"
run "$C" iris fetch
run "$C" iris train
run "$C" iris publish
say "each party: pull the model into its protected volume and run it on its rows"
for p in alice bob; do
  run "$ROOT/parties/$p" iris "pull-$p"
  run "$ROOT/parties/$p" iris "run-$p"
done
head -4 "$A/predictions/classification.csv"

say "alice: who got what in her sessions (anyone can check the log's chain, not read it)"
"$seml" cas audit --verify --session iris --session iris-alice --key "$A/alice.key" | tail -3
echo
echo "done: $ROOT"
