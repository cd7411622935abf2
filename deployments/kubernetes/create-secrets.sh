#!/usr/bin/env bash
# Creates the Kubernetes Secret `chatbox-secrets` with strong generated values.
#
#   MONGO_URI=mongodb://... \
#   LLM_PROVIDER_OPENAI_API_KEY=... LLM_PROVIDER_ANTHROPIC_API_KEY=... \
#   ./create-secrets.sh [--namespace NS] [--apply]
#
# Generated unless already set in the environment (set them to re-create the Secret with the
# current values, e.g. when only a provider key changes):
#   JWT_SECRET      64 hex characters from /dev/urandom (256 bits)
#   ENCRYPTION_KEY  base64: + 32 random bytes (AES-256)
# Taken from the environment (required): MONGO_URI and the provider API keys.
#
# Without --apply the Secret is printed as YAML (kubectl --dry-run=client) to stdout, e.g.
# to pipe into kubeseal; nothing is written to disk except a private temp dir that is removed
# on exit. Values are passed to kubectl as files, never as command-line arguments, so they do
# not show up in `ps`. Every value is checked against the server's own rules first.
set -euo pipefail

namespace="chatbox"
apply=false
secret_name="chatbox-secrets"

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

while [[ $# -gt 0 ]]; do
    case "$1" in
        -n | --namespace)
            namespace="${2:?--namespace needs a value}"
            shift 2
            ;;
        --apply)
            apply=true
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *)
            echo "unknown argument: $1" >&2
            usage >&2
            exit 2
            ;;
    esac
done

die() {
    echo "create-secrets: $*" >&2
    exit 1
}

command -v kubectl >/dev/null || die "kubectl is required"

# The server's rules (crates/chat-config validate.rs): no placeholder markers anywhere, and a
# JWT secret of at least 32 bytes without a weak word.
placeholder_re='replace_with|placeholder|change-me|change_me|your-'
weak_re='secret|test|password|admin|changeme|default|example|demo|12345|placeholder'

check_not_placeholder() {
    local name="$1" value="$2"
    [[ -n "$value" ]] || die "$name is empty"
    if grep -qiE "$placeholder_re" <<<"$value"; then
        die "$name looks like a template placeholder; set the real value"
    fi
}

generate_jwt_secret() {
    local candidate
    # A random value contains a weak word (e.g. "12345") with a tiny probability; the server
    # would refuse it, so draw again.
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        candidate="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
        if ! grep -qiE "$weak_re" <<<"$candidate"; then
            printf '%s' "$candidate"
            return 0
        fi
    done
    die "could not generate a JWT secret"
}

generate_encryption_key() {
    printf 'base64:%s' "$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
}

JWT_SECRET="${JWT_SECRET:-$(generate_jwt_secret)}"
ENCRYPTION_KEY="${ENCRYPTION_KEY:-$(generate_encryption_key)}"
MONGO_URI="${MONGO_URI:-}"
LLM_PROVIDER_OPENAI_API_KEY="${LLM_PROVIDER_OPENAI_API_KEY:-}"
LLM_PROVIDER_ANTHROPIC_API_KEY="${LLM_PROVIDER_ANTHROPIC_API_KEY:-}"

check_not_placeholder JWT_SECRET "$JWT_SECRET"
(( ${#JWT_SECRET} >= 32 )) || die "JWT_SECRET must be at least 32 bytes"
if grep -qiE "$weak_re" <<<"$JWT_SECRET"; then
    die "JWT_SECRET contains a weak word; leave it unset to generate one"
fi

check_not_placeholder ENCRYPTION_KEY "$ENCRYPTION_KEY"
if [[ "$ENCRYPTION_KEY" == base64:* ]]; then
    key_len="$(printf '%s' "${ENCRYPTION_KEY#base64:}" | base64 -d 2>/dev/null | wc -c)"
else
    key_len="$(printf '%s' "$ENCRYPTION_KEY" | wc -c)"
fi
(( key_len == 32 )) || die "ENCRYPTION_KEY must be 32 bytes (or base64: of 32 bytes), got $key_len"

check_not_placeholder MONGO_URI "$MONGO_URI"
[[ "$MONGO_URI" == mongodb://* || "$MONGO_URI" == mongodb+srv://* ]] \
    || die "MONGO_URI must start with mongodb:// or mongodb+srv://"
check_not_placeholder LLM_PROVIDER_OPENAI_API_KEY "$LLM_PROVIDER_OPENAI_API_KEY"
check_not_placeholder LLM_PROVIDER_ANTHROPIC_API_KEY "$LLM_PROVIDER_ANTHROPIC_API_KEY"

umask 077
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

keys=(JWT_SECRET ENCRYPTION_KEY MONGO_URI LLM_PROVIDER_OPENAI_API_KEY LLM_PROVIDER_ANTHROPIC_API_KEY)
from_files=()
for key in "${keys[@]}"; do
    printf '%s' "${!key}" >"$workdir/$key"
    from_files+=("--from-file=$key=$workdir/$key")
done

render() {
    kubectl create secret generic "$secret_name" \
        --namespace "$namespace" \
        --type Opaque \
        "${from_files[@]}" \
        --dry-run=client -o yaml
}

if $apply; then
    render | kubectl apply -f -
    echo "create-secrets: applied secret/$secret_name in namespace $namespace" >&2
    echo "create-secrets: restart the pods to pick it up: kubectl -n $namespace rollout restart deployment/chatbox" >&2
else
    render
fi
