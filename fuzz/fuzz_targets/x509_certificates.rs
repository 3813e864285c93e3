#![no_main]
//! Parses arbitrary bytes as DER or PEM certificates and validates whatever parses against itself.
use chrysalis_x509::{ChainOptions, parse_certificates, validate_cert_chain};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(certs) = parse_certificates(data) {
        let options = ChainOptions { at_unix_secs: 1_800_000_000, hostname: Some("example.com".into()) };
        let _ = validate_cert_chain(&certs, &certs, &options);
    }
});
