#!/usr/bin/env bash
# Installs everything the test suite needs, then runs it. This is the README's test
# command and what CI runs (.ci/run). Safe to run again: every step is idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# Java and Maven: the nodes come from Maven Central and run on Java 17 (ES 9 on the
# Temurin 25 JDK that this kind of machine ships beside it).
if ! command -v java >/dev/null || ! command -v mvn >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q && apt-get install -y -q openjdk-17-jdk-headless maven
fi

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# Fetch the node distributions and modules into the per-user cache once (no-op when cached),
# so that a slow download shows up here and not as a test timeout.
python3 -c "from remote_reindex.sandbox.distributions import prefetch_all; prefetch_all(print)"

exec python3 -m pytest -p no:cacheprovider -q "$@"
