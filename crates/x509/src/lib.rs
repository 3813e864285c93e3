//! X.509 certificate chain validation for Chrysalis (RFC 5280 path checks for a given chain).
//!
//! A crate of its own because RSA, P-256, P-384 and DER parsing weigh more than the rest of the
//! crypto layer together: pages load this module only when they validate certificates.
//!
//! Checks each link's signature (Ed25519, ECDSA P-256/P-384, RSA PKCS#1 v1.5 and PSS with
//! SHA-256/384), validity windows, CA basic constraints, key usage and path length, issuer /
//! subject chaining up to a trust anchor, unknown critical extensions, and the leaf's
//! subjectAltName against a hostname. Revocation is not checked.

use std::{fmt, net::IpAddr};

use der::{
    Decode, Encode,
    asn1::{ObjectIdentifier, OctetString},
};
use x509_cert::{
    Certificate,
    ext::pkix::{BasicConstraints, KeyUsage, SubjectAltName, name::GeneralName},
    spki::SubjectPublicKeyInfoRef,
};

use chrysalis_crypto::{HashAlgorithm, digest};

/// Why a certificate chain was rejected: the kind, which certificate, and details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("certificate {index} ({subject}): {kind}: {detail}")]
pub struct CertError {
    /// Position of the failing certificate: 0 is the leaf; `chain.len()` means the trust anchor.
    pub index: usize,
    /// The failing certificate's subject (RFC 4514 string), or `"?"` when it did not parse.
    pub subject: String,
    /// What went wrong.
    pub kind: CertErrorKind,
    /// Specifics, e.g. the time window or the names that did not match.
    pub detail: String,
}

impl CertError {
    /// The stable error code of [`kind`](Self::kind).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

/// The kinds of chain validation failure, each with a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertErrorKind {
    /// The certificate bytes or PEM did not parse (`BAD_FORMAT`).
    Malformed,
    /// No certificates were given (`CERT_EMPTY_CHAIN`).
    EmptyChain,
    /// The validation time is after `notAfter` (`CERT_EXPIRED`).
    Expired,
    /// The validation time is before `notBefore` (`CERT_NOT_YET_VALID`).
    NotYetValid,
    /// The issuer's key does not verify the signature (`CERT_BAD_SIGNATURE`).
    BadSignature,
    /// The next certificate's subject is not this certificate's issuer (`CERT_ISSUER_MISMATCH`).
    IssuerMismatch,
    /// An issuing certificate is not a CA or may not sign certificates (`CERT_NOT_CA`).
    NotCa,
    /// An issuing CA's path length constraint is exceeded (`CERT_PATH_TOO_LONG`).
    PathTooLong,
    /// The leaf does not name the hostname (`CERT_HOSTNAME_MISMATCH`).
    HostnameMismatch,
    /// The chain does not end at a trust anchor (`CERT_UNTRUSTED`).
    Untrusted,
    /// A signature or key algorithm this crate does not verify (`CERT_UNSUPPORTED_ALGORITHM`).
    UnsupportedAlgorithm,
    /// A critical extension this crate does not process (`CERT_UNKNOWN_CRITICAL_EXTENSION`).
    UnknownCriticalExtension,
}

impl CertErrorKind {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            CertErrorKind::Malformed => "BAD_FORMAT",
            CertErrorKind::EmptyChain => "CERT_EMPTY_CHAIN",
            CertErrorKind::Expired => "CERT_EXPIRED",
            CertErrorKind::NotYetValid => "CERT_NOT_YET_VALID",
            CertErrorKind::BadSignature => "CERT_BAD_SIGNATURE",
            CertErrorKind::IssuerMismatch => "CERT_ISSUER_MISMATCH",
            CertErrorKind::NotCa => "CERT_NOT_CA",
            CertErrorKind::PathTooLong => "CERT_PATH_TOO_LONG",
            CertErrorKind::HostnameMismatch => "CERT_HOSTNAME_MISMATCH",
            CertErrorKind::Untrusted => "CERT_UNTRUSTED",
            CertErrorKind::UnsupportedAlgorithm => "CERT_UNSUPPORTED_ALGORITHM",
            CertErrorKind::UnknownCriticalExtension => "CERT_UNKNOWN_CRITICAL_EXTENSION",
        }
    }
}

impl fmt::Display for CertErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CertErrorKind::Malformed => "malformed certificate",
            CertErrorKind::EmptyChain => "empty chain",
            CertErrorKind::Expired => "expired",
            CertErrorKind::NotYetValid => "not yet valid",
            CertErrorKind::BadSignature => "bad signature",
            CertErrorKind::IssuerMismatch => "issuer mismatch",
            CertErrorKind::NotCa => "issuer is not a CA",
            CertErrorKind::PathTooLong => "path length constraint exceeded",
            CertErrorKind::HostnameMismatch => "hostname mismatch",
            CertErrorKind::Untrusted => "not issued by a trust anchor",
            CertErrorKind::UnsupportedAlgorithm => "unsupported algorithm",
            CertErrorKind::UnknownCriticalExtension => "unknown critical extension",
        })
    }
}

/// Options for [`validate_cert_chain`].
#[derive(Debug, Clone, Default)]
pub struct ChainOptions {
    /// Validation time in seconds since the Unix epoch.
    pub at_unix_secs: u64,
    /// When set, the leaf's subjectAltName must name this DNS name or IP address.
    pub hostname: Option<String>,
}

/// What a successful validation found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainInfo {
    /// The leaf's subject (RFC 4514).
    pub leaf_subject: String,
    /// The subject of the trust anchor the chain ends at.
    pub anchor_subject: String,
    /// Certificates in the validated path, leaf and anchor included.
    pub path_len: usize,
    /// The earliest `notAfter` along the path, in seconds since the Unix epoch.
    pub not_after_unix_secs: u64,
}

/// Parses one DER certificate, or every certificate of a PEM text. Errors are
/// [`CertErrorKind::Malformed`] with `index` 0.
pub fn parse_certificates(input: &[u8]) -> Result<Vec<Certificate>, CertError> {
    let malformed = |e: der::Error| CertError {
        index: 0,
        subject: "?".into(),
        kind: CertErrorKind::Malformed,
        detail: e.to_string(),
    };
    let trimmed = input.trim_ascii_start();
    if trimmed.starts_with(b"-----BEGIN") {
        let certs = Certificate::load_pem_chain(trimmed).map_err(malformed)?;
        if certs.is_empty() {
            return Err(malformed(der::Error::from(der::ErrorKind::Failed)));
        }
        Ok(certs)
    } else {
        Ok(vec![Certificate::from_der(input).map_err(malformed)?])
    }
}

const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_ECDSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const OID_ECDSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const OID_RSA_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const OID_RSA_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const OID_RSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const OID_RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_P384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.132.0.34");
const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
const OID_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.2");

/// Extensions this module understands or may safely ignore when critical.
const KNOWN_EXTENSIONS: [ObjectIdentifier; 7] = [
    ObjectIdentifier::new_unwrap("2.5.29.19"), // basicConstraints
    ObjectIdentifier::new_unwrap("2.5.29.15"), // keyUsage
    ObjectIdentifier::new_unwrap("2.5.29.17"), // subjectAltName
    ObjectIdentifier::new_unwrap("2.5.29.37"), // extKeyUsage
    ObjectIdentifier::new_unwrap("2.5.29.14"), // subjectKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.35"), // authorityKeyIdentifier
    ObjectIdentifier::new_unwrap("2.5.29.32"), // certificatePolicies
];

/// The smallest RSA modulus accepted.
const MIN_RSA_BITS: usize = 2048;

/// Validates `chain` (leaf first, then intermediates) up to one of `anchors` at
/// `options.at_unix_secs`, and the leaf against `options.hostname` when given.
pub fn validate_cert_chain(
    chain: &[Certificate],
    anchors: &[Certificate],
    options: &ChainOptions,
) -> Result<ChainInfo, CertError> {
    let fail = |index: usize, cert: Option<&Certificate>, kind, detail: String| CertError {
        index,
        subject: cert.map_or_else(|| "?".into(), |c| c.tbs_certificate().subject().to_string()),
        kind,
        detail,
    };
    let Some(leaf) = chain.first() else {
        return Err(fail(
            0,
            None,
            CertErrorKind::EmptyChain,
            "give at least the leaf certificate".into(),
        ));
    };
    let mut not_after = u64::MAX;
    for (index, cert) in chain.iter().enumerate() {
        let window = check_validity(cert, options.at_unix_secs)
            .map_err(|(kind, detail)| fail(index, Some(cert), kind, detail))?;
        not_after = not_after.min(window);
        check_critical_extensions(cert)
            .map_err(|(kind, detail)| fail(index, Some(cert), kind, detail))?;
        if index > 0 {
            // `index - 1` CA certificates sit between this issuer and the leaf.
            check_issuer_role(cert, index - 1)
                .map_err(|(kind, detail)| fail(index, Some(cert), kind, detail))?;
        }
        if let Some(issuer) = chain.get(index + 1) {
            check_link(cert, issuer)
                .map_err(|(kind, detail)| fail(index, Some(cert), kind, detail))?;
        }
    }

    // The last certificate is itself an anchor, or is issued by one.
    let last_index = chain.len() - 1;
    let last = &chain[last_index];
    let anchor = if anchors.iter().any(|a| a == last) {
        last
    } else {
        let named: Vec<&Certificate> = anchors
            .iter()
            .filter(|a| a.tbs_certificate().subject() == last.tbs_certificate().issuer())
            .collect();
        if named.is_empty() {
            return Err(fail(
                last_index,
                Some(last),
                CertErrorKind::Untrusted,
                format!(
                    "no trust anchor has the subject {}",
                    last.tbs_certificate().issuer()
                ),
            ));
        }
        let mut verdict = Err((CertErrorKind::BadSignature, String::new()));
        for candidate in named {
            verdict = check_link(last, candidate).map(|()| candidate);
            if verdict.is_ok() {
                break;
            }
        }
        let anchor =
            verdict.map_err(|(kind, detail)| fail(last_index, Some(last), kind, detail))?;
        check_issuer_role(anchor, last_index)
            .map_err(|(kind, detail)| fail(chain.len(), Some(anchor), kind, detail))?;
        anchor
    };

    if let Some(hostname) = &options.hostname {
        check_hostname(leaf, hostname)
            .map_err(|(kind, detail)| fail(0, Some(leaf), kind, detail))?;
    }
    Ok(ChainInfo {
        leaf_subject: leaf.tbs_certificate().subject().to_string(),
        anchor_subject: anchor.tbs_certificate().subject().to_string(),
        path_len: chain.len() + usize::from(!std::ptr::eq(anchor, last)),
        not_after_unix_secs: not_after,
    })
}

type Check<T = ()> = Result<T, (CertErrorKind, String)>;

/// Returns `notAfter` in Unix seconds when `at` is inside the validity window.
fn check_validity(cert: &Certificate, at: u64) -> Check<u64> {
    let validity = cert.tbs_certificate().validity();
    let not_before = validity.not_before.to_unix_duration().as_secs();
    let not_after = validity.not_after.to_unix_duration().as_secs();
    if at < not_before {
        return Err((
            CertErrorKind::NotYetValid,
            format!(
                "valid from {} (validated at {at} s since the epoch)",
                validity.not_before
            ),
        ));
    }
    if at > not_after {
        return Err((
            CertErrorKind::Expired,
            format!(
                "valid until {} (validated at {at} s since the epoch)",
                validity.not_after
            ),
        ));
    }
    Ok(not_after)
}

fn check_critical_extensions(cert: &Certificate) -> Check {
    for ext in cert.tbs_certificate().extensions().into_iter().flatten() {
        if ext.critical && !KNOWN_EXTENSIONS.contains(&ext.extn_id) {
            return Err((
                CertErrorKind::UnknownCriticalExtension,
                format!("extension {}", ext.extn_id),
            ));
        }
    }
    Ok(())
}

/// An issuing certificate must be a CA allowed to sign certificates, with a path length
/// constraint that admits `cas_below` CA certificates below it.
fn check_issuer_role(cert: &Certificate, cas_below: usize) -> Check {
    let tbs = cert.tbs_certificate();
    let constraints = tbs
        .get_extension::<BasicConstraints>()
        .map_err(|e| (CertErrorKind::Malformed, format!("basicConstraints: {e}")))?;
    let Some((_, constraints)) = constraints.filter(|(_, bc)| bc.ca) else {
        return Err((
            CertErrorKind::NotCa,
            "basicConstraints does not say CA:TRUE".into(),
        ));
    };
    if let Some((_, usage)) = tbs
        .get_extension::<KeyUsage>()
        .map_err(|e| (CertErrorKind::Malformed, format!("keyUsage: {e}")))?
        && !usage.key_cert_sign()
    {
        return Err((CertErrorKind::NotCa, "keyUsage lacks keyCertSign".into()));
    }
    if let Some(limit) = constraints.path_len_constraint
        && cas_below > usize::from(limit)
    {
        return Err((
            CertErrorKind::PathTooLong,
            format!("pathLenConstraint is {limit} but {cas_below} CA certificates follow it"),
        ));
    }
    Ok(())
}

/// `cert` names `issuer` as its issuer and carries a valid signature by `issuer`'s key.
fn check_link(cert: &Certificate, issuer: &Certificate) -> Check {
    let tbs = cert.tbs_certificate();
    if tbs.issuer() != issuer.tbs_certificate().subject() {
        return Err((
            CertErrorKind::IssuerMismatch,
            format!(
                "issuer is {} but the next certificate is {}",
                tbs.issuer(),
                issuer.tbs_certificate().subject()
            ),
        ));
    }
    if cert.signature_algorithm() != tbs.signature() {
        return Err((
            CertErrorKind::Malformed,
            "outer and inner signature algorithms differ".into(),
        ));
    }
    let signed = tbs
        .to_der()
        .map_err(|e| (CertErrorKind::Malformed, format!("re-encoding: {e}")))?;
    let signature = cert.signature().as_bytes().ok_or((
        CertErrorKind::Malformed,
        "signature has unused bits".to_string(),
    ))?;
    let spki_der = issuer
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .map_err(|e| (CertErrorKind::Malformed, format!("issuer key: {e}")))?;
    let spki = SubjectPublicKeyInfoRef::from_der(&spki_der)
        .map_err(|e| (CertErrorKind::Malformed, format!("issuer key: {e}")))?;
    verify_signature(&spki, cert.signature_algorithm(), &signed, signature)
}

fn unsupported<T>(what: String) -> Check<T> {
    Err((CertErrorKind::UnsupportedAlgorithm, what))
}

fn bad_signature<T>(why: impl fmt::Display) -> Check<T> {
    Err((CertErrorKind::BadSignature, why.to_string()))
}

fn verify_signature(
    spki: &SubjectPublicKeyInfoRef<'_>,
    algorithm: &x509_cert::spki::AlgorithmIdentifierOwned,
    signed: &[u8],
    signature: &[u8],
) -> Check {
    let key = spki.subject_public_key.as_bytes().ok_or((
        CertErrorKind::Malformed,
        "public key has unused bits".to_string(),
    ))?;
    let key_oid = spki.algorithm.oid;
    match algorithm.oid {
        oid if oid == OID_ED25519 => {
            if key_oid != OID_ED25519 {
                return unsupported(format!("Ed25519 signature with a {key_oid} key"));
            }
            if chrysalis_crypto::ed25519_verify(key, signed, signature) {
                Ok(())
            } else {
                bad_signature("Ed25519 verification failed")
            }
        }
        oid if oid == OID_ECDSA_SHA256 || oid == OID_ECDSA_SHA384 => {
            let hash = if oid == OID_ECDSA_SHA256 {
                HashAlgorithm::Sha256
            } else {
                HashAlgorithm::Sha384
            };
            verify_ecdsa(spki, key, &digest(hash, signed), signature)
        }
        oid if oid == OID_RSA_SHA256 || oid == OID_RSA_SHA384 => {
            let rsa_key = rsa_public_key(key_oid, key)?;
            let (hash, scheme) = if oid == OID_RSA_SHA256 {
                (
                    HashAlgorithm::Sha256,
                    rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                )
            } else {
                (
                    HashAlgorithm::Sha384,
                    rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                )
            };
            rsa_key
                .verify(scheme, &digest(hash, signed), signature)
                .or_else(|e| bad_signature(format!("RSA PKCS#1 v1.5: {e}")))
        }
        oid if oid == OID_RSA_PSS => {
            let rsa_key = rsa_public_key(key_oid, key)?;
            let (hash, salt_len) = pss_params(algorithm)?;
            let hashed = digest(hash, signed);
            let result = match hash {
                HashAlgorithm::Sha256 => rsa_key.verify(
                    rsa::Pss::<sha2::Sha256>::new_with_salt(salt_len),
                    &hashed,
                    signature,
                ),
                _ => rsa_key.verify(
                    rsa::Pss::<sha2::Sha384>::new_with_salt(salt_len),
                    &hashed,
                    signature,
                ),
            };
            result.or_else(|e| bad_signature(format!("RSA-PSS: {e}")))
        }
        oid => unsupported(format!("signature algorithm {oid}")),
    }
}

fn verify_ecdsa(
    spki: &SubjectPublicKeyInfoRef<'_>,
    key: &[u8],
    prehash: &[u8],
    signature: &[u8],
) -> Check {
    use p256::ecdsa::signature::hazmat::PrehashVerifier;
    if spki.algorithm.oid != OID_EC_PUBLIC_KEY {
        return unsupported(format!("ECDSA signature with a {} key", spki.algorithm.oid));
    }
    let curve = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.decode_as::<ObjectIdentifier>().ok())
        .ok_or((
            CertErrorKind::Malformed,
            "EC key without a named curve".to_string(),
        ))?;
    let bad_key = |e: p256::ecdsa::Error| (CertErrorKind::Malformed, format!("EC public key: {e}"));
    if curve == OID_P256 {
        let vk = p256::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(bad_key)?;
        let sig = p256::ecdsa::Signature::from_der(signature)
            .or_else(|e| bad_signature(format!("ECDSA P-256: {e}")))?;
        vk.verify_prehash(prehash, &sig)
            .or_else(|e| bad_signature(format!("ECDSA P-256: {e}")))
    } else if curve == OID_P384 {
        let vk = p384::ecdsa::VerifyingKey::from_sec1_bytes(key).map_err(bad_key)?;
        let sig = p384::ecdsa::Signature::from_der(signature)
            .or_else(|e| bad_signature(format!("ECDSA P-384: {e}")))?;
        vk.verify_prehash(prehash, &sig)
            .or_else(|e| bad_signature(format!("ECDSA P-384: {e}")))
    } else {
        unsupported(format!("elliptic curve {curve}"))
    }
}

fn rsa_public_key(key_oid: ObjectIdentifier, key: &[u8]) -> Check<rsa::PublicKey> {
    use rsa::{pkcs1::DecodeRsaPublicKey, traits::PublicKeyParts};
    if key_oid != OID_RSA_ENCRYPTION && key_oid != OID_RSA_PSS {
        return unsupported(format!("RSA signature with a {key_oid} key"));
    }
    let rsa_key = rsa::PublicKey::from_pkcs1_der(key)
        .map_err(|e| (CertErrorKind::Malformed, format!("RSA public key: {e}")))?;
    let bits = rsa_key.size() * 8;
    if bits < MIN_RSA_BITS {
        return unsupported(format!(
            "RSA key of {bits} bits; at least {MIN_RSA_BITS} are required"
        ));
    }
    Ok(rsa_key)
}

/// The hash and salt length of RSASSA-PSS parameters (MGF1 must use the same hash).
fn pss_params(
    algorithm: &x509_cert::spki::AlgorithmIdentifierOwned,
) -> Check<(HashAlgorithm, usize)> {
    let params = algorithm.parameters.as_ref().ok_or((
        CertErrorKind::Malformed,
        "RSA-PSS without parameters".to_string(),
    ))?;
    let params: rsa::pkcs1::RsaPssParamsOwned = params
        .decode_as()
        .map_err(|e| (CertErrorKind::Malformed, format!("RSA-PSS parameters: {e}")))?;
    let hash = match params.hash.oid {
        oid if oid == OID_SHA256 => HashAlgorithm::Sha256,
        oid if oid == OID_SHA384 => HashAlgorithm::Sha384,
        oid => return unsupported(format!("RSA-PSS hash {oid}")),
    };
    let mgf_hash = params.mask_gen.parameters.map(|p| p.oid);
    if mgf_hash != Some(params.hash.oid) {
        return unsupported("RSA-PSS with an MGF1 hash other than the message hash".into());
    }
    Ok((hash, usize::from(params.salt_len)))
}

/// The leaf's subjectAltName must contain `hostname` as a DNS name (a `*.` wildcard matches one
/// left-most label) or, for an IP literal, as an IP address.
fn check_hostname(leaf: &Certificate, hostname: &str) -> Check {
    let host = hostname.trim_end_matches('.').to_ascii_lowercase();
    let ip: Option<IpAddr> = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok();
    let san = leaf
        .tbs_certificate()
        .get_extension::<SubjectAltName>()
        .map_err(|e| (CertErrorKind::Malformed, format!("subjectAltName: {e}")))?;
    let names = san.map(|(_, san)| san.0).unwrap_or_default();
    let mut listed = Vec::new();
    for name in &names {
        match (name, ip) {
            (GeneralName::DnsName(dns), None) => {
                let dns = dns.as_str().trim_end_matches('.').to_ascii_lowercase();
                if dns_matches(&dns, &host) {
                    return Ok(());
                }
                listed.push(dns);
            }
            (GeneralName::IpAddress(bytes), Some(ip)) => {
                if ip_bytes(ip) == *bytes {
                    return Ok(());
                }
                listed.push(format!("IP {}", hex_string(bytes.as_bytes())));
            }
            _ => {}
        }
    }
    Err((
        CertErrorKind::HostnameMismatch,
        if listed.is_empty() {
            format!(
                "{hostname} is not named: the certificate has no matching subjectAltName entries"
            )
        } else {
            format!("{hostname} is not among {}", listed.join(", "))
        },
    ))
}

fn dns_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.split_once('.').is_some_and(|(label, rest)| {
            !label.is_empty() && rest == suffix && suffix.contains('.')
        }),
        None => pattern == host,
    }
}

fn ip_bytes(ip: IpAddr) -> OctetString {
    let bytes = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    OctetString::new(bytes).expect("an IP address is a short octet string")
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_exactly_one_label() {
        assert!(dns_matches("*.example.com", "api.example.com"));
        assert!(!dns_matches("*.example.com", "example.com"));
        assert!(!dns_matches("*.example.com", "a.b.example.com"));
        assert!(
            !dns_matches("*.com", "example.com"),
            "no wildcard over a bare TLD"
        );
        assert!(dns_matches("example.com", "example.com"));
    }

    #[test]
    fn garbage_is_bad_format() {
        assert_eq!(
            parse_certificates(b"\x30\x03\x02\x01").unwrap_err().code(),
            "BAD_FORMAT"
        );
        assert_eq!(
            parse_certificates(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
                .unwrap_err()
                .code(),
            "BAD_FORMAT"
        );
        let err = validate_cert_chain(&[], &[], &ChainOptions::default()).unwrap_err();
        assert_eq!(err.code(), "CERT_EMPTY_CHAIN");
    }
}
