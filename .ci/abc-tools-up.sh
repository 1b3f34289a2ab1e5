#!/usr/bin/env bash
# Debian's abcmidi (abc2midi) and abcm2ps, which `smslab eval abc` runs on every tune (validity tiers V1-V4,
# the MIDI the music metrics read). Needs root to install; without root it says what to install, and the
# tests that need the tools are skipped outside CI (in CI they must run). Idempotent.
set -euo pipefail
if command -v abc2midi >/dev/null && command -v abcm2ps >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "abc-tools-up: not root; abc2midi/abcm2ps missing: run 'sudo apt-get install abcmidi abcm2ps'" \
       "(smslab eval abc reports their tiers as unavailable, and their tests are skipped)" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends abcmidi abcm2ps >/dev/null
echo "abc-tools-up: $(abc2midi -ver 2>&1 | head -1); $(abcm2ps -V 2>&1 | head -1)" >&2
