#!/bin/sh
# Checks a qtm proof bundle with openssl, jq and coreutils only: no qtm code involved.
# Usage: docs/verify-with-openssl.sh BUNDLE.json CA.pem [X.crl] [LOG.vkey]
#   X.crl: the warrant issuer X's revocation list (from X), for a proxy-signed bundle; T, the
#   clock tolerance (docs/FORMATS.md), is QTM_CLOCK_TOLERANCE seconds, default 120.
#   LOG.vkey: the server's transparency-log key (a file or the vkey text): a version 2 or 3 bundle's
#   inclusion proof and checkpoint signature are checked too (docs/FORMATS.md, "Transparency log").
#   The two optional arguments may come in either order: a CRL is told by its PEM or DER form.
# Exits non-zero at the first check that fails. See docs/FORMATS.md for every offset used here.
set -eu
bundle=$1
ca=$2
crl=
logkey=
for extra in "${3:-}" "${4:-}"; do
  [ -n "$extra" ] || continue
  if [ -f "$extra" ] && { grep -q 'BEGIN X509 CRL' "$extra" 2>/dev/null || [ "$(od -An -tx1 -N1 "$extra" | tr -d ' ')" = 30 ]; }; then crl=$extra; else logkey=$extra; fi
done
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
fail() { echo "$*" >&2; exit 1; }

# qtm's extended key usages (docs/FORMATS.md, "Roles"): openssl prints them as dotted OIDs.
arc=2.25.285551962100591553650106340579240825396
eku_receipt=$arc.1.1; eku_card=$arc.1.2; eku_warrant=$arc.1.3
has_eku() {  # certificate, OID: exact match in the comma-separated list openssl prints
  openssl x509 -in "$1" -noout -ext extendedKeyUsage 2>/dev/null | tail -n +2 | tr ',' '\n' | tr -d ' ' | grep -qx "$2"
}

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
  2|3) d=32; hash=sha256 ;;
  *) fail "unknown package version $version" ;;
esac
txid=$(u32 $((1 + d)))
time=$(u32 $((5 + d)))
echo "package version $version, transaction $txid, time $time ($(date -u -d "@$time" +%Y-%m-%dT%H:%M:%SZ))"

# Fields 1-7 are what parties A and B sign. The server signs fields 1-5 in versions 1 and 2, and
# in version 3 fields 1-7 and the 32-byte warrant digest that follows them.
hdr=$((9 + 4 * d))
head -c $hdr "$w/package.bin" > "$w/header.bin"
if [ "$version" = 3 ]; then
  head -c $((hdr + 32)) "$w/package.bin" > "$w/server-signed.bin"
  slice $hdr 32 > "$w/warrant-digest.bin"
  off=$((hdr + 32))
else
  head -c $((9 + 2 * d)) "$w/package.bin" > "$w/server-signed.bin"
  off=$hdr
fi

# Content ID: digest of the exact content bytes.
openssl dgst -"$hash" -binary "$w/content.txt" > "$w/content-id.bin"
slice $((9 + d)) "$d" | cmp -s - "$w/content-id.bin" || fail "content ID mismatch"
echo "content ID OK"

# Signatures: v1 fixed 128 bytes each, versions 2-3 u16 length + bytes; order A, B, server.
for who in a b server; do
  if [ "$version" = 1 ]; then len=128; else len=$(u16 $off); off=$((off + 2)); fi
  slice $off "$len" > "$w/sig-$who.bin"
  off=$((off + len))
done
[ "$off" -eq "$(wc -c < "$w/package.bin")" ] || fail "trailing bytes in package"

check_party() {  # name, certificate list key, fingerprint offset, signed file, signature file, required EKU
  jq -r ".certificates.$2[0]" "$bundle" > "$w/$1.pem"
  # Intermediates, if the list carries any, are offered as untrusted links (qtm verify does the same).
  jq -r ".certificates.$2[1:][]" "$bundle" > "$w/$1-chain.pem"
  if [ -s "$w/$1-chain.pem" ]; then set -- "$@" -untrusted "$w/$1-chain.pem"; else set -- "$@"; fi
  openssl verify -attime "$time" -CAfile "$ca" ${7:+"$7"} ${8:+"$8"} "$w/$1.pem" > /dev/null || fail "$1 certificate does not chain to $ca at the transaction time"
  has_eku "$w/$1.pem" "$6" || fail "$1 certificate lacks the extended key usage $6 its role needs"
  openssl x509 -in "$w/$1.pem" -pubkey -noout > "$w/$1.pub"
  openssl pkey -pubin -in "$w/$1.pub" -outform DER | openssl dgst -"$hash" -binary > "$w/$1.fp"
  slice "$3" "$d" | cmp -s - "$w/$1.fp" || fail "$1 fingerprint mismatch"
  openssl dgst -"$hash" -verify "$w/$1.pub" -signature "$5" "$4" > /dev/null || fail "$1 signature does not verify"
  echo "$1: $(openssl x509 -in "$w/$1.pem" -noout -subject) role, fingerprint, chain and signature OK"
}
check_party server server 1 "$w/server-signed.bin" "$w/sig-server.bin" "$eku_receipt"
check_party party-b partyB $((9 + 3 * d)) "$w/header.bin" "$w/sig-b.bin" "$eku_card"

warrants=$(jq -r '.warrants // [] | length' "$bundle")
attested=$(jq -r 'has("attestation")' "$bundle")
[ "$warrants" -le 1 ] || fail "the bundle carries $warrants warrants; a proof is signed under at most one"
if [ "$attested" = true ] && { [ "$version" != 2 ] || [ "$warrants" = 0 ]; }; then
  fail "an attestation belongs only to a package version 2 proxy proof"
fi

if [ "$warrants" = 0 ]; then
  # Without a warrant party A is the server itself: field 6 = field 2, a receipt-signing key,
  # and in version 3 the server signed with an all-zero warrant digest.
  slice $((9 + 2 * d)) "$d" > "$w/field6.bin"
  slice 1 "$d" | cmp -s - "$w/field6.bin" || fail "without a warrant party A must be the server: field 6 is not field 2"
  if [ "$version" = 3 ]; then
    head -c 32 /dev/zero | cmp -s - "$w/warrant-digest.bin" || fail "the server signed under a warrant the bundle does not carry"
  fi
  check_party party-a partyA $((9 + 2 * d)) "$w/header.bin" "$w/sig-a.bin" "$eku_receipt"
else
  # Proxy signing (claims 10-11): A signed with the key of a warrant, an RFC 3820 proxy
  # certificate that party A (manager X, or a delegating customer) issued. The warrant counts only
  # if the server bound it: in version 3 its SHA-256 is the warrant digest the server signed; in
  # version 2 the server's attestation from its store must verify; v1 has no proxy signing.
  jq -r '.warrants[0]' "$bundle" > "$w/warrant.pem"
  openssl x509 -in "$w/warrant.pem" -outform DER -out "$w/warrant.der"
  openssl dgst -sha256 -binary "$w/warrant.der" > "$w/warrant.sha256"
  case $version in
    1) fail "the patent's v1 package has no proxy signing" ;;
    2)
      [ "$attested" = true ] || fail "package version 2 does not bind the warrant to the server's signature: ask the server to attest it (qtm server attest)"
      { printf 'qtm proxy attestation v2\000'; openssl dgst -sha256 -binary "$w/package.bin"; cat "$w/warrant.sha256"; } > "$w/attestation-statement.bin"
      jq -r .attestation "$bundle" | base64 -d > "$w/attestation.bin"
      openssl dgst -sha256 -verify "$w/server.pub" -signature "$w/attestation.bin" "$w/attestation-statement.bin" > /dev/null \
        || fail "the server's attestation does not verify for this package and warrant"
      echo "warrant: the server attests it signed this package under this warrant" ;;
    3)
      cmp -s "$w/warrant.sha256" "$w/warrant-digest.bin" || fail "the server did not sign under this warrant (warrant digest mismatch)"
      echo "warrant: the server's signature names this warrant" ;;
  esac
  jq -r '.certificates.partyA[0]' "$bundle" > "$w/party-a.pem"
  has_eku "$w/party-a.pem" "$eku_warrant" || fail "party A (the warrant's issuer) may not issue warrants"
  openssl x509 -in "$w/party-a.pem" -pubkey -noout | openssl pkey -pubin -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1 > "$w/issuer.key"
  b_key=$(openssl pkey -pubin -in "$w/party-b.pub" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1)
  [ "$(cat "$w/issuer.key")" != "$b_key" ] || fail "the warrant's issuer is party B itself"
  openssl verify -allow_proxy_certs -attime "$time" -CAfile "$ca" -untrusted "$w/party-a.pem" "$w/warrant.pem" > /dev/null \
    || fail "warrant does not chain through party A to $ca at the transaction time"
  openssl x509 -in "$w/warrant.pem" -pubkey -noout > "$w/warrant.pub"
  openssl pkey -pubin -in "$w/warrant.pub" -outform DER | openssl dgst -"$hash" -binary > "$w/warrant.fp"
  slice $((9 + 2 * d)) "$d" | cmp -s - "$w/warrant.fp" || fail "party A fingerprint is not the warrant's key"
  openssl dgst -"$hash" -verify "$w/warrant.pub" -signature "$w/sig-a.bin" "$w/header.bin" > /dev/null || fail "party A (proxy) signature does not verify"
  policy=$(openssl x509 -in "$w/warrant.pem" -noout -text | sed -n 's/^ *Policy Text: //p')
  case $policy in
    *"\"fingerprint\":\"$b_key\""*) ;;
    *) fail "the warrant does not name party B's key $b_key (policy: $policy); customers named by subject must be checked by hand" ;;
  esac
  echo "party-a: signed by proxy for $(openssl x509 -in "$w/party-a.pem" -noout -subject) under warrant $(openssl x509 -in "$w/warrant.pem" -noout -serial), which names party B: OK"
  if [ -n "$crl" ]; then
    # X's own list, checked with X's certificate. `openssl crl` exits 0 even when the signature
    # fails, so its "verify OK" is what counts; `openssl verify -crl_check` does not apply CRLs to
    # proxy certificates (OpenSSL 3.0), so the dates are compared here.
    inform=DER; grep -q -- '-----BEGIN X509 CRL-----' "$crl" 2>/dev/null && inform=PEM
    openssl crl -inform "$inform" -in "$crl" -noout 2> "$w/crl.err" || fail "$crl is not a CRL: $(head -n1 "$w/crl.err")"
    openssl crl -inform "$inform" -in "$crl" -CAfile "$w/party-a.pem" -noout 2> "$w/crl.err" || true
    grep -qx 'verify OK' "$w/crl.err" || fail "$crl is not signed by party A (the warrant's issuer): $(head -n1 "$w/crl.err")"
    openssl crl -inform "$inform" -in "$crl" -noout -text > "$w/crl.txt"
    grep -q 'Version 2 (0x1)' "$w/crl.txt" || fail "$crl is not a version 2 CRL"
    crl_number=$(openssl crl -inform "$inform" -in "$crl" -noout -crlnumber | sed 's/^crlNumber=//')
    this_update=$(date -u -d "$(openssl crl -inform "$inform" -in "$crl" -noout -lastupdate | sed 's/^lastUpdate=//')" +%s)
    serial=$(openssl x509 -in "$w/warrant.pem" -noout -serial | sed 's/^serial=//')
    # Serials are compared as strings: awk would read 01E5 and 100000 as the same number.
    revoked=$(awk -v s="$serial" '/Serial Number:/ {n = $3} /Revocation Date:/ && (n "") == (s "") {sub(/^ *Revocation Date: /, ""); print; exit}' "$w/crl.txt")
    tolerance=${QTM_CLOCK_TOLERANCE:-120}
    if [ -n "$revoked" ]; then
      r=$(date -u -d "$revoked" +%s)
      [ $((r - tolerance)) -gt "$time" ] || fail "warrant $serial was revoked at $revoked: a proxy signature dated later than that minus $tolerance s is refused"
    fi
    if [ "$this_update" -lt "$time" ]; then
      echo "revocation: list $crl_number of $(date -u -d "@$this_update" +%FT%TZ): revocation status unknown (the list is older than the transaction)"
    else
      echo "revocation: list $crl_number of $(date -u -d "@$this_update" +%FT%TZ): warrant $serial not revoked: OK"
    fi
  else
    echo "         (revocation not checked: give X's revocation list as the third argument)"
  fi
fi

# Transparency log (bundle versions 2 and 3): the checkpoint is signed by the log key (C2SP signed-note,
# Ed25519), and the inclusion proof leads from this transaction's leaf to its root (RFC 9162).
if [ -n "$logkey" ]; then
  [ "$(jq -r '.transparency | type' "$bundle")" = object ] || fail "log: the bundle carries no inclusion proof (qtm log prove adds one)"
  [ -f "$logkey" ] && logkey=$(cat "$logkey")
  # vkey = name+hex key ID+base64(0x01 || 32-byte Ed25519 key); the base64 may hold '+'.
  kname=${logkey%%+*}; rest=${logkey#*+}; kid=${rest%%+*}; kb64=${rest#*+}
  printf '%s' "$kb64" | base64 -d > "$w/vkey.bin"
  [ "$(wc -c < "$w/vkey.bin")" -eq 33 ] && [ "$(od -An -tx1 -N1 "$w/vkey.bin" | tr -d ' ')" = 01 ] || fail "log: $kname is not an Ed25519 vkey"
  tail -c 32 "$w/vkey.bin" > "$w/log.raw"
  { printf '%s\n' "$kname"; cat "$w/vkey.bin"; } | openssl dgst -sha256 -binary | head -c 4 | od -An -tx1 | tr -d ' \n' > "$w/kid.hex"
  [ "$(cat "$w/kid.hex")" = "$kid" ] || fail "log: the vkey's key ID does not match its name and key"
  { printf '\060\052\060\005\006\003\053\145\160\003\041\000'; cat "$w/log.raw"; } | openssl pkey -pubin -inform DER -out "$w/log.pub"
  jq -j .transparency.checkpoint "$bundle" > "$w/checkpoint.txt"
  # The note text is every line before the first blank one; signature lines follow it.
  sed '/^$/,$d' "$w/checkpoint.txt" > "$w/checkpoint-body.txt"
  origin=$(sed -n 1p "$w/checkpoint-body.txt"); size=$(sed -n 2p "$w/checkpoint-body.txt")
  sed -n 3p "$w/checkpoint-body.txt" | base64 -d > "$w/root.bin"
  [ "$origin" = "$kname" ] || fail "log: the checkpoint's origin $origin is not the log $kname"
  line=$(sed '1,/^$/d' "$w/checkpoint.txt" | grep "^— $kname " | head -n 1) || fail "log: no signature by $kname on the checkpoint"
  printf '%s' "${line##* }" | base64 -d > "$w/note-sig.bin"
  [ "$(head -c 4 "$w/note-sig.bin" | od -An -tx1 | tr -d ' \n')" = "$kid" ] || fail "log: the signature line names another key ID"
  tail -c +5 "$w/note-sig.bin" > "$w/checkpoint.sig"
  openssl pkeyutl -verify -pubin -inkey "$w/log.pub" -rawin -in "$w/checkpoint-body.txt" -sigfile "$w/checkpoint.sig" > /dev/null \
    || fail "log: the checkpoint signature does not verify with $kname+$kid"
  echo "log: checkpoint of $origin at size $size signed by $kname+$kid: OK"
  # Leaf: C = SHA-256("qtm/tlog-leaf/v1" 0x00 || u64 transaction ID || package); the entry is
  # 0x01 || C (bundle version 2), or 0x02 || C || the card's tag (version 3, "tag"); its hash is
  # SHA-256(0x00 || entry). The tag is taken as given: only the card holder's monitoring key checks it.
  { printf 'qtm/tlog-leaf/v1\000'; head -c 4 /dev/zero; slice $((1 + d)) 4; cat "$w/package.bin"; } | openssl dgst -sha256 -binary > "$w/commitment.bin"
  if [ "$(jq -r '.transparency.tag // empty' "$bundle")" != "" ]; then
    jq -r .transparency.tag "$bundle" | base64 -d > "$w/tag.bin"
    [ "$(wc -c < "$w/tag.bin")" -eq 32 ] || fail "log: the card tag is not 32 bytes"
    { printf '\000\002'; cat "$w/commitment.bin" "$w/tag.bin"; } | openssl dgst -sha256 -binary > "$w/r.bin"
  else
    { printf '\000\001'; cat "$w/commitment.bin"; } | openssl dgst -sha256 -binary > "$w/r.bin"
  fi
  index=$(jq -r .transparency.index "$bundle")
  fn=$index; sn=$((size - 1)); n=0
  [ "$fn" -lt "$size" ] || fail "log: leaf $index is not in a tree of size $size"
  for p in $(jq -r '.transparency.proof[]' "$bundle"); do
    [ "$sn" -gt 0 ] || fail "log: the inclusion proof is too long"
    printf '%s' "$p" | base64 -d > "$w/p.bin"
    if [ $((fn % 2)) = 1 ] || [ "$fn" = "$sn" ]; then
      { printf '\001'; cat "$w/p.bin" "$w/r.bin"; } | openssl dgst -sha256 -binary > "$w/r2.bin"
      while [ $((fn % 2)) = 0 ] && [ "$fn" != 0 ]; do fn=$((fn / 2)); sn=$((sn / 2)); done
    else
      { printf '\001'; cat "$w/r.bin" "$w/p.bin"; } | openssl dgst -sha256 -binary > "$w/r2.bin"
    fi
    mv "$w/r2.bin" "$w/r.bin"; fn=$((fn / 2)); sn=$((sn / 2)); n=$((n + 1))
  done
  [ "$sn" = 0 ] || fail "log: the inclusion proof is too short"
  cmp -s "$w/r.bin" "$w/root.bin" || fail "log: the inclusion proof does not lead to the checkpoint's root: transaction $txid is not proven in the log"
  echo "log: transaction $txid is leaf $index of the tree of size $size ($n-hash proof): OK"
fi
echo "ALL CHECKS PASSED"
