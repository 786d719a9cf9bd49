//! The certificates for `rediss://` connections to Valkey: the CA that signed the server's
//! certificate, and the client certificate that a server with `tls-auth-clients yes` (Valkey's
//! default) asks every client for.

use std::path::{Path, PathBuf};

/// The files as configured (`--tls-ca-cert`, `--tls-cert`, `--tls-key`).
#[derive(Clone, Debug, Default)]
pub struct TlsPaths {
    pub ca_cert: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The files' contents, read once at start so that a missing file is an error before the first
/// connection, not a handshake failure later.
#[derive(Clone, Debug, Default)]
pub struct TlsFiles {
    ca: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl TlsFiles {
    pub fn load(paths: &TlsPaths) -> Result<TlsFiles, String> {
        let ca = paths.ca_cert.as_deref().map(|p| read(p, "--tls-ca-cert")).transpose()?;
        let client = match (&paths.cert, &paths.key) {
            (Some(cert), Some(key)) => Some((read(cert, "--tls-cert")?, read(key, "--tls-key")?)),
            (None, None) => None,
            (Some(_), None) => return Err("--tls-cert needs --tls-key (the client certificate's private key)".into()),
            (None, Some(_)) => return Err("--tls-key needs --tls-cert (the client certificate)".into()),
        };
        Ok(TlsFiles { ca, client })
    }

    /// What the redis client needs for a `rediss://` connection; None when nothing was given
    /// (the system's trusted roots, no client certificate).
    pub fn certificates(&self) -> Option<redis::TlsCertificates> {
        if self.ca.is_none() && self.client.is_none() {
            return None;
        }
        Some(redis::TlsCertificates {
            client_tls: self
                .client
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig { client_cert: cert.clone(), client_key: key.clone() }),
            root_cert: self.ca.clone(),
        })
    }
}

fn read(path: &Path, flag: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {flag} {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_certificate_needs_its_key_and_the_reverse() {
        let dir = std::env::temp_dir().join(format!("gateway-tls-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let pem = dir.join("x.pem");
        std::fs::write(&pem, b"pem").expect("write");
        let only_cert = TlsPaths { cert: Some(pem.clone()), ..Default::default() };
        assert!(TlsFiles::load(&only_cert).unwrap_err().contains("--tls-key"));
        let only_key = TlsPaths { key: Some(pem.clone()), ..Default::default() };
        assert!(TlsFiles::load(&only_key).unwrap_err().contains("--tls-cert"));
        let missing = TlsPaths { ca_cert: Some(dir.join("absent.pem")), ..Default::default() };
        assert!(TlsFiles::load(&missing).unwrap_err().contains("cannot read --tls-ca-cert"));
        assert!(TlsFiles::load(&TlsPaths::default()).expect("nothing given").certificates().is_none());
        let both = TlsFiles::load(&TlsPaths { cert: Some(pem.clone()), key: Some(pem.clone()), ..Default::default() }).expect("both");
        let certs = both.certificates().expect("certificates");
        assert!(certs.client_tls.is_some() && certs.root_cert.is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
