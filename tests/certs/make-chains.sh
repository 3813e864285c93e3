#!/usr/bin/env bash
# Generates the certificate chains the certificate tests validate, with the openssl CLI.
#   bash tests/certs/make-chains.sh OUT_DIR
# Every file is PEM. Chains (leaf first) and the anchors they should validate against:
#   good:         leaf-good (Ed25519 key, RSA PKCS#1 SHA-256 sig) <- inter-rsa (ECDSA P-256 SHA-256 sig) <- root-p256
#   p384:         leaf-p384 (ECDSA P-384 SHA-384 sig) <- root-p384
#   pss:          leaf-pss (RSA-PSS SHA-384 sig) <- inter-rsa <- root-p256
#   ed25519:      leaf-ed (Ed25519 sig) <- root-ed25519
#   expired:      leaf-expired (2020-2021) <- inter-rsa <- root-p256
#   wrong issuer: leaf-other (issued by "Other CA") presented with inter-rsa
#   bad sig:      leaf-forged (issuer name of inter-rsa, signed by another key) <- inter-rsa
#   not a CA:     leaf-under-noca <- inter-noca (CA:FALSE) <- root-p256
#   path length:  leaf-deep <- inter-deep <- inter-pathlen0 (pathlen:0) <- root-p256
set -euo pipefail
OUT="${1:?usage: make-chains.sh OUT_DIR}"
mkdir -p "$OUT"
cd "$OUT"

cat > ext.cnf <<'CNF'
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ca_pathlen0]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
[noca]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyCertSign
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:api.example.com, DNS:*.agents.example.com, IP:127.0.0.1
CNF

key() { # name alg
  case "$2" in
    p256) openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" ;;
    p384) openssl genpkey -quiet -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$1.key" ;;
    rsa) openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1.key" ;;
    ed25519) openssl genpkey -quiet -algorithm ED25519 -out "$1.key" ;;
  esac
}

root() { # name alg subject [digest]
  key "$1" "$2"
  local digest=()
  [ -n "${4:-}" ] && digest=("-$4")
  openssl req -x509 -new -key "$1.key" -subj "$3" -days 3650 "${digest[@]}" \
    -extensions ca -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n'; cat ext.cnf) -out "$1.pem"
}

issue() { # name alg subject issuer section [extra x509 args...]
  local name=$1 alg=$2 subject=$3 issuer=$4 section=$5
  shift 5
  key "$name" "$alg"
  openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
  openssl x509 -req -in "$name.csr" -CA "$issuer.pem" -CAkey "$issuer.key" -CAcreateserial \
    -days 825 -extfile ext.cnf -extensions "$section" "$@" -out "$name.pem" 2>/dev/null
}

root root-p256 p256 "/CN=Chrysalis Test Root P-256" sha256
root root-p384 p384 "/CN=Chrysalis Test Root P-384" sha384
root root-ed25519 ed25519 "/CN=Chrysalis Test Root Ed25519"
root root-other p256 "/CN=Other CA" sha256

issue inter-rsa rsa "/CN=Chrysalis Test Intermediate RSA" root-p256 ca -sha256
issue leaf-good ed25519 "/CN=api.example.com" inter-rsa leaf -sha256
issue leaf-p384 p384 "/CN=api.example.com" root-p384 leaf -sha384
issue leaf-pss p256 "/CN=api.example.com" inter-rsa leaf -sha384 \
  -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:48 -sigopt rsa_mgf1_md:sha384
issue leaf-ed p256 "/CN=api.example.com" root-ed25519 leaf
issue leaf-other p256 "/CN=api.example.com" root-other leaf -sha256

# A certificate naming inter-rsa as issuer but signed by an impostor key with the same name.
key impostor rsa
openssl req -x509 -new -key impostor.key -subj "/CN=Chrysalis Test Intermediate RSA" -days 30 \
  -extensions ca -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n'; cat ext.cnf) -out impostor.pem
issue leaf-forged p256 "/CN=api.example.com" impostor leaf -sha256

issue inter-noca p256 "/CN=Chrysalis Test Not A CA" root-p256 noca -sha256
issue leaf-under-noca p256 "/CN=api.example.com" inter-noca leaf -sha256

issue inter-pathlen0 p256 "/CN=Chrysalis Test Path Length Zero" root-p256 ca_pathlen0 -sha256
issue inter-deep p256 "/CN=Chrysalis Test Deep Intermediate" inter-pathlen0 ca -sha256
issue leaf-deep p256 "/CN=api.example.com" inter-deep leaf -sha256

# An expired leaf (valid 2020-01-01 to 2021-01-01), made with `openssl ca` for explicit dates.
mkdir -p ca-db && : > ca-db/index.txt && echo 1000 > ca-db/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
serial = ca-db/serial
new_certs_dir = ca-db
default_md = sha256
policy = any
[any]
commonName = supplied
CNF
key leaf-expired p256
openssl req -new -key leaf-expired.key -subj "/CN=api.example.com" -out leaf-expired.csr
openssl ca -batch -config ca.cnf -cert inter-rsa.pem -keyfile inter-rsa.key -in leaf-expired.csr \
  -startdate 20200101000000Z -enddate 20210101000000Z -extfile ext.cnf -extensions leaf \
  -notext -out leaf-expired.pem 2>/dev/null

rm -f ./*.csr ./*.srl
echo "certificate chains written to $OUT"
