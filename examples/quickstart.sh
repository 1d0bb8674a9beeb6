#!/usr/bin/env bash
# The Strongroom quickstart: the whole first-run flow against a running server, with curl.
#
#   STRONGROOM_URL    the server (default https://127.0.0.1:8443)
#   STRONGROOM_TOKEN  the bootstrap operator token that `strongroom serve` printed (required)
#   STRONGROOM_CACERT the server's certificate (default ./strongroom-data/tls/cert.pem, the
#                     self-signed one of the default data directory)
#
# It creates a tenant, its admin key, a `people` collection, a role and an application key;
# stores Ada Lovelace; reads her back for an allowed purpose; is refused for a disallowed one;
# finds her by email; shows the audit trail; deletes, restores and (after shortening the grace
# period to 0 days) purges her record; then answers Grace Hopper's access request (registered,
# exported, downloaded once, closed) and her erasure request with a signed receipt (checked
# offline with `strongroom receipt verify` when STRONGROOM_BIN names the binary). Any step that
# does not behave exits non-zero.
set -euo pipefail

URL="${STRONGROOM_URL:-https://127.0.0.1:8443}"
TOKEN="${STRONGROOM_TOKEN:?set STRONGROOM_TOKEN to the bootstrap token printed by strongroom serve}"
CACERT="${STRONGROOM_CACERT:-./strongroom-data/tls/cert.pem}"

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "quickstart: needs $tool (apt-get install -y $tool)" >&2; exit 2; }
done
TLS=()
if [[ "$URL" == https://* ]]; then
  [[ -r "$CACERT" ]] || { echo "quickstart: cannot read the certificate $CACERT (set STRONGROOM_CACERT)" >&2; exit 2; }
  TLS=(--cacert "$CACERT")
fi

STATUS=""
BODY=""
# call METHOD PATH TOKEN PURPOSE [JSON]: sets STATUS and BODY.
call() {
  local method=$1 path=$2 token=$3 purpose=$4 data=${5-}
  local args=(-sS "${TLS[@]}" -X "$method" -o /tmp/strongroom-quickstart.$$ -w '%{http_code}')
  [[ -n "$token" ]] && args+=(-H "Authorization: Bearer $token")
  [[ -n "$purpose" ]] && args+=(-H "X-Purpose: $purpose")
  [[ -n "$data" ]] && args+=(-H 'Content-Type: application/json' --data "$data")
  STATUS=$(curl "${args[@]}" "$URL$path")
  BODY=$(cat /tmp/strongroom-quickstart.$$)
  rm -f /tmp/strongroom-quickstart.$$
}

step=0
expect() { # expect STATUS DESCRIPTION
  step=$((step + 1))
  if [[ "$STATUS" != "$1" ]]; then
    echo "✗ $step. $2: expected HTTP $1, got $STATUS: $BODY" >&2
    exit 1
  fi
  echo "✓ $step. $2"
}

check() { # check JQ-EXPRESSION DESCRIPTION: the last body must satisfy the expression
  if ! jq -e "$1" >/dev/null <<<"$BODY"; then
    echo "✗ $2: $BODY" >&2
    exit 1
  fi
}

STATUS=$(curl -sS "${TLS[@]}" -o /dev/null -w '%{http_code}' "$URL/healthz")
expect 200 "the server is up"

TENANT_NAME="acme-$(date +%s)-$RANDOM"
call POST /v1/tenants "$TOKEN" "" "{\"name\": \"$TENANT_NAME\"}"
expect 201 "operator creates tenant $TENANT_NAME"
TENANT=$(jq -r .id <<<"$BODY")

call POST /v1/api-keys "$TOKEN" "" "{\"name\": \"acme admin\", \"roles\": [\"admin\"], \"expires_in_days\": 30, \"tenant\": \"$TENANT\"}"
expect 201 "operator issues the tenant's admin key"
ADMIN=$(jq -r .key <<<"$BODY")

call PUT /v1/collections/people "$ADMIN" "" '{
  "purposes": ["support", "marketing"],
  "fields": [
    {"name": "email", "type": "email", "classification": "identifier", "searchable": true, "mask": "email", "required": true},
    {"name": "name", "type": "string", "classification": "personal", "mask": "first1"},
    {"name": "phone", "type": "phone", "classification": "personal", "mask": "last4", "purposes": ["support"]},
    {"name": "birth_date", "type": "date", "classification": "personal", "mask": "year"}
  ],
  "purge_grace_days": 7}'
expect 201 "admin defines the people collection (deleted records restorable for 7 days)"

call PUT /v1/roles/support_agent "$ADMIN" "" '{"collections": {"people": {
  "operations": ["create", "read", "search", "delete"],
  "purposes": ["support"],
  "fields": {"email": "plain", "name": "plain", "phone": "masked", "birth_date": "none"}}}}'
expect 201 "admin defines the support_agent role"

call POST /v1/api-keys "$ADMIN" "" '{"name": "helpdesk app", "roles": ["support_agent"], "expires_in_days": 7}'
expect 201 "admin issues an application key with that role"
APP=$(jq -r .key <<<"$BODY")

call POST /v1/collections/people/records "$APP" support '{"subject_ref": "customer-1815", "fields": {
  "email": "ada.lovelace@example.com", "name": "Ada Lovelace", "phone": "+44 20 7946 0958", "birth_date": "1815-12-10"}}'
expect 201 "the application stores Ada Lovelace"
RECORD=$(jq -r .id <<<"$BODY")

call GET "/v1/collections/people/records/$RECORD" "$APP" support
expect 200 "reads her back for the purpose support"
check '.fields.email == "ada.lovelace@example.com" and .fields.name == "Ada Lovelace"' "plain fields shown"
check '.fields.phone == "****0958"' "phone masked"
check '.fields | has("birth_date") | not' "birth date hidden"
echo "   $(jq -c .fields <<<"$BODY")"

call GET "/v1/collections/people/records/$RECORD" "$APP" marketing
expect 403 "is refused for the purpose marketing, which her role does not allow"
check '.error.code == "purpose_denied"' "with code purpose_denied"

call GET "/v1/collections/people/records/$RECORD" "$APP" ""
expect 400 "is refused without a purpose"
check '.error.code == "purpose_required"' "with code purpose_required"

call GET "/v1/collections/people/records?email=ADA.LOVELACE@example.com" "$APP" support
expect 200 "finds her by email through the blind index"
check ".records | length == 1 and .[0].id == \"$RECORD\"" "exactly her record"

call GET "/v1/collections/people/records/$RECORD" "$ADMIN" support
expect 403 "the tenant admin cannot read personal data without a data role"

call GET "/v1/audit/entries?action=record.read" "$ADMIN" ""
expect 200 "the admin reads the audit trail of reads"
check '[.entries[].outcome] | contains(["ok", "denied"])' "allowed and denied reads are both recorded"
jq -r '.entries[] | "   #\(.seq) \(.action) \(.outcome) purpose=\(.purpose // "-") fields=\(.fields | join(","))"' <<<"$BODY"

call DELETE "/v1/collections/people/records/$RECORD" "$APP" support
expect 204 "the application deletes her record: blocked, not yet destroyed"
call GET "/v1/collections/people/records/$RECORD" "$APP" support
expect 404 "a deleted record is invisible to every data operation"
call POST "/v1/collections/people/records/$RECORD/restore" "$ADMIN" ""
expect 204 "the tenant admin restores it within its grace period"
call GET "/v1/collections/people/records/$RECORD" "$APP" support
expect 200 "she is back"

call PUT /v1/collections/people "$ADMIN" "" '{
  "purposes": ["support", "marketing"],
  "fields": [
    {"name": "email", "type": "email", "classification": "identifier", "searchable": true, "mask": "email", "required": true},
    {"name": "name", "type": "string", "classification": "personal", "mask": "first1"},
    {"name": "phone", "type": "phone", "classification": "personal", "mask": "last4", "purposes": ["support"]},
    {"name": "birth_date", "type": "date", "classification": "personal", "mask": "year"}
  ],
  "purge_grace_days": 0}'
expect 200 "the admin shortens the grace period to 0 days (purged at the next run)"
call DELETE "/v1/collections/people/records/$RECORD" "$APP" support
expect 204 "deleted again"
call GET /v1/jobs/purge "$TOKEN" ""
expect 200 "the operator looks at the purge job"
RUNS=$(jq -r .runs <<<"$BODY")
call POST /v1/jobs/purge/run "$TOKEN" ""
expect 202 "and asks for a run now"
for _ in $(seq 1 100); do
  call GET /v1/jobs/purge "$TOKEN" ""
  [[ $(jq -r .runs <<<"$BODY") -gt $RUNS ]] && break
  sleep 0.1
done
check ".runs > $RUNS and .state == \"idle\"" "the purge ran"
call POST "/v1/collections/people/records/$RECORD/restore" "$ADMIN" ""
expect 404 "after the purge her record is gone for good, with her key"

# A data subject's erasure request, answered by the tenant's privacy officer.
call POST /v1/collections/people/records "$APP" support '{"fields": {"email": "grace.hopper@example.com", "name": "Grace Hopper"}}'
expect 201 "the application stores Grace Hopper"
GRACE=$(jq -r .id <<<"$BODY")
SUBJECT=$(jq -r .subject <<<"$BODY")
call POST /v1/api-keys "$ADMIN" "" '{"name": "privacy officer", "roles": ["privacy_officer"], "expires_in_days": 30}'
expect 201 "the tenant admin gives the privacy officer a key"
DPO=$(jq -r .key <<<"$BODY")
call GET "/v1/subjects/$SUBJECT" "$DPO" ""
expect 200 "the privacy officer sees what is held of her: counts, no values"
check '.collections == [{"collection": "people", "active": 1, "blocked": 0, "versions": 0}]' "one record in people"
# Her access request (Art. 15): registered, answered with an export, closed.
call POST /v1/dsars "$DPO" "" "{\"kind\": \"access\", \"subject\": \"$SUBJECT\"}"
expect 201 "the privacy officer registers her access request, received now"
check ".due_at > .request.received_at and .overdue == false" "due one calendar month after receipt"
ACCESS=$(jq -r .id <<<"$BODY")
NOW=$(jq -r .request.received_at <<<"$BODY")
call POST "/v1/subjects/$SUBJECT/export" "$DPO" "" "{\"recipient\": \"Grace Hopper\", \"request\": \"$ACCESS\"}"
expect 201 "exports everything held of her, sealed under her key, for one download within 7 days"
EXPORT=$(jq -r .id <<<"$BODY")
call GET "/v1/exports/$EXPORT?format=text" "$DPO" ""
expect 200 "downloads it as a document for her: every field, who accessed it and why, the processing facts"
grep -q "grace.hopper@example.com" <<<"$BODY" && grep -q "Who accessed your data" <<<"$BODY" \
  || { echo "✗ the export does not hold her data and its access history: $BODY" >&2; exit 1; }
call GET "/v1/exports/$EXPORT" "$DPO" ""
expect 410 "a second download is refused: the export is gone"
ANSWERED="\"kind\": \"access\", \"received_at\": $NOW, \"subject\": \"$SUBJECT\", \"identity_verified_by\": \"DPO desk, passport seen\", \"identity_verified_at\": $NOW, \"status\": \"fulfilled\", \"closed_at\": $NOW"
call PUT "/v1/dsars/$ACCESS" "$DPO" "" "{$ANSWERED, \"fulfilment\": \"$EXPORT\"}"
expect 200 "closes the request with the export that answered it"
# Her erasure request (Art. 17).
call POST /v1/dsars "$DPO" "" "{\"kind\": \"erasure\", \"received_at\": $NOW, \"subject\": \"$SUBJECT\"}"
expect 201 "registers her erasure request"
ERASURE=$(jq -r .id <<<"$BODY")
call POST "/v1/subjects/$SUBJECT/erasure" "$DPO" ""
expect 200 "and erases her: records, history, index entries and her key destroyed"
check ".subject == \"$SUBJECT\" and .repeat == false and .destroyed.records == 1" "the signed receipt says what was destroyed"
RECEIPT=$BODY
call GET "/v1/collections/people/records/$GRACE" "$APP" support
expect 404 "her record is gone"
call POST "/v1/subjects/$SUBJECT/erasure" "$DPO" ""
expect 200 "asking again changes nothing"
check '.repeat == true' "and says so"
call PUT "/v1/dsars/$ERASURE" "$DPO" "" "{${ANSWERED/\"access\"/\"erasure\"}}"
expect 200 "closes the erasure request: the erasure ledger has her erasure"
call GET /v1/dsars "$DPO" ""
expect 200 "the request register: nothing open, nothing overdue"
check '.open == 0 and .overdue == 0 and (.requests | length) == 2' "two requests answered"
if [[ -n "${STRONGROOM_BIN:-}" ]]; then
  call GET /v1/audit/public-key "" ""
  PUBLIC_KEY=$(jq -r .ed25519 <<<"$BODY")
  printf '%s' "$RECEIPT" > /tmp/strongroom-receipt.$$
  step=$((step + 1))
  "$STRONGROOM_BIN" receipt verify /tmp/strongroom-receipt.$$ --public-key "$PUBLIC_KEY" >/dev/null \
    || { echo "✗ $step. the receipt does not verify offline" >&2; exit 1; }
  rm -f /tmp/strongroom-receipt.$$
  echo "✓ $step. strongroom receipt verify checks the receipt offline"
fi

echo "Quickstart passed: $step steps."
