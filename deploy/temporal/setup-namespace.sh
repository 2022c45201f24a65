#!/bin/sh
# Run by deploy/compose.yaml in temporalio/admin-tools once the server is up: creates the
# namespace openlines uses and the search attributes its dialog workflows keep current
# (workflows/search_attributes.py; tests/test_deploy_files.py checks the two lists match).
# Safe to run again: what exists already is kept.
set -eu
namespace="${OPENLINES_TEMPORAL_NAMESPACE:?}"
# The address as an IPv4 one, as temporalio's own compose setup does.
host="${TEMPORAL_ADDRESS%:*}"
port="${TEMPORAL_ADDRESS##*:}"
ip="$(getent ahostsv4 "$host" | awk 'NR == 1 { print $1 }')"
export TEMPORAL_ADDRESS="${ip:-$host}:$port"

attempt=0
until temporal operator cluster health >/dev/null 2>&1; do
    attempt=$((attempt + 1))
    [ "$attempt" -lt 30 ] || { echo "Temporal at $TEMPORAL_ADDRESS is not healthy"; exit 1; }
    sleep 2
done

if ! temporal operator namespace describe --namespace "$namespace" >/dev/null 2>&1; then
    temporal operator namespace create --namespace "$namespace" --retention 7d
fi

# A new namespace takes a few seconds to be known everywhere: retry each attribute.
attribute() {
    name="$1"
    type="$2"
    attempt=0
    until temporal operator search-attribute list --namespace "$namespace" | grep -qw "$name" \
        || temporal operator search-attribute create --namespace "$namespace" \
            --name "$name" --type "$type"; do
        attempt=$((attempt + 1))
        [ "$attempt" -lt 15 ] || { echo "could not create search attribute $name"; exit 1; }
        sleep 2
    done
}
attribute LineId Int
attribute OperatorId Int
attribute ClientId Int
attribute DialogStatus Keyword
attribute ChannelType Keyword
attribute DialogStalled Bool
echo "namespace $namespace and its search attributes are ready"
