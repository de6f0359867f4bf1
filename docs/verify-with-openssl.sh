#!/bin/sh
# Checks a qtm proof bundle with openssl, jq and coreutils only: no qtm code involved.
# Usage: docs/verify-with-openssl.sh BUNDLE.json CA.pem
# Exits non-zero at the first check that fails. See docs/FORMATS.md for every offset used here.
set -eu
bundle=$1
ca=$2
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT

# The bundle's binary fields are standard base64.
jq -r .package "$bundle" | base64 -d > "$w/package.bin"
jq -r .content.base64 "$bundle" | base64 -d > "$w/content.txt"

u8()  { od -An -tu1 -j "$1" -N1 "$w/package.bin" | tr -d ' '; }
u16() { od -An -tu2 --endian=big -j "$1" -N2 "$w/package.bin" | tr -d ' '; }
u32() { od -An -tu4 --endian=big -j "$1" -N4 "$w/package.bin" | tr -d ' '; }
slice() { tail -c +"$(($1 + 1))" "$w/package.bin" | head -c "$2"; }   # offset, length

version=$(u8 0)
case $version in
  1) d=20; hash=sha1 ;;
  2) d=32; hash=sha256 ;;
  *) echo "unknown package version $version" >&2; exit 1 ;;
esac
txid=$(u32 $((1 + d)))
time=$(u32 $((5 + d)))
echo "package version $version, transaction $txid, time $time ($(date -u -d "@$time" +%Y-%m-%dT%H:%M:%SZ))"

# Fields 1-7 are what parties A and B sign; fields 1-5 are what the server signs.
head -c $((9 + 4 * d)) "$w/package.bin" > "$w/header.bin"
head -c $((9 + 2 * d)) "$w/package.bin" > "$w/server-signed.bin"

# Content ID: digest of the exact content bytes.
openssl dgst -"$hash" -binary "$w/content.txt" > "$w/content-id.bin"
slice $((9 + d)) "$d" | cmp -s - "$w/content-id.bin" || { echo "content ID mismatch" >&2; exit 1; }
echo "content ID OK"

# Signatures: v1 fixed 128 bytes each, v2 u16 length + bytes; order A, B, server.
off=$((9 + 4 * d))
for who in a b server; do
  if [ "$version" = 1 ]; then len=128; else len=$(u16 $off); off=$((off + 2)); fi
  slice $off "$len" > "$w/sig-$who.bin"
  off=$((off + len))
done
[ "$off" -eq "$(wc -c < "$w/package.bin")" ] || { echo "trailing bytes in package" >&2; exit 1; }

check_party() {  # name, certificate list key, fingerprint offset, signed file, signature file
  jq -r ".certificates.$2[0]" "$bundle" > "$w/$1.pem"
  openssl verify -attime "$time" -CAfile "$ca" "$w/$1.pem" > /dev/null || { echo "$1 certificate does not chain to $ca at the transaction time" >&2; exit 1; }
  openssl x509 -in "$w/$1.pem" -pubkey -noout > "$w/$1.pub"
  openssl pkey -pubin -in "$w/$1.pub" -outform DER | openssl dgst -"$hash" -binary > "$w/$1.fp"
  slice "$3" "$d" | cmp -s - "$w/$1.fp" || { echo "$1 fingerprint mismatch" >&2; exit 1; }
  openssl dgst -"$hash" -verify "$w/$1.pub" -signature "$5" "$4" > /dev/null || { echo "$1 signature does not verify" >&2; exit 1; }
  echo "$1: $(openssl x509 -in "$w/$1.pem" -noout -subject) fingerprint, chain and signature OK"
}
check_party server server 1 "$w/server-signed.bin" "$w/sig-server.bin"
check_party party-b partyB $((9 + 3 * d)) "$w/header.bin" "$w/sig-b.bin"

if [ "$(jq -r '.warrants // [] | length' "$bundle")" = 0 ]; then
  check_party party-a partyA $((9 + 2 * d)) "$w/header.bin" "$w/sig-a.bin"
else
  # Proxy signing (claims 10-11): A signed with the key of a warrant, an RFC 3820 proxy
  # certificate that party A (manager X) issued. openssl checks the chain at the transaction
  # time; the warrant's policy must name party B (openssl leaves policies to the application).
  jq -r '.warrants[0]' "$bundle" > "$w/warrant.pem"
  jq -r '.certificates.partyA[0]' "$bundle" > "$w/party-a.pem"
  openssl verify -allow_proxy_certs -attime "$time" -CAfile "$ca" -untrusted "$w/party-a.pem" "$w/warrant.pem" > /dev/null \
    || { echo "warrant does not chain through party A to $ca at the transaction time" >&2; exit 1; }
  openssl x509 -in "$w/warrant.pem" -pubkey -noout > "$w/warrant.pub"
  openssl pkey -pubin -in "$w/warrant.pub" -outform DER | openssl dgst -"$hash" -binary > "$w/warrant.fp"
  slice $((9 + 2 * d)) "$d" | cmp -s - "$w/warrant.fp" || { echo "party A fingerprint is not the warrant's key" >&2; exit 1; }
  openssl dgst -"$hash" -verify "$w/warrant.pub" -signature "$w/sig-a.bin" "$w/header.bin" > /dev/null || { echo "party A (proxy) signature does not verify" >&2; exit 1; }
  policy=$(openssl x509 -in "$w/warrant.pem" -noout -text | sed -n 's/^ *Policy Text: //p')
  b_key=$(openssl pkey -pubin -in "$w/party-b.pub" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
  case $policy in
    *"\"fingerprint\":\"$b_key\""*) ;;
    *) echo "the warrant does not name party B's key $b_key (policy: $policy); customers named by subject must be checked by hand" >&2; exit 1 ;;
  esac
  echo "party-a: signed by proxy for $(openssl x509 -in "$w/party-a.pem" -noout -subject) under warrant $(openssl x509 -in "$w/warrant.pem" -noout -serial), which names party B: OK"
  echo "         (revocation is not checked here: qtm verify --revocations does that)"
fi
echo "ALL CHECKS PASSED"
